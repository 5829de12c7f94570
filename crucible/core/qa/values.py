"""Values built from JSON Schemas: valid ones for positive scenarios, deterministic per seed."""

from __future__ import annotations

import math
import random
import re
from decimal import Decimal
from importlib import import_module
from typing import Any

from crucible.core.qa.spec import Spec, SpecProblem

#: The regex parser (sre_parse before 3.11). It is private, and not every typeshed lists it.
sre: Any = import_module("re._parser")

#: Below this depth objects get their required properties only, so recursive schemas end.
MAX_DEPTH = 6
#: Arrays and strings are built at most this large, whatever the schema asks.
MAX_ITEMS = 50
MAX_LENGTH = 10_000
_FORMATS = {
    "date-time": "2024-01-01T12:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "email": "qa@example.com",
    "uri": "https://example.com/crucible",
    "url": "https://example.com/crucible",
    "hostname": "example.com",
    "ipv4": "192.0.2.10",
    "ipv6": "2001:db8::10",
    "byte": "Y3J1Y2libGU=",
    "binary": "crucible",
    "password": "Secret-123",
}


class ValueBuilder:
    """Builds a valid value for a schema in ``spec``, following ``$ref``s.

    Schemas come from users: keyword values of the wrong type, huge counts and cycles are
    all possible. Counts are capped, and the caller turns any error into a spec problem.
    """

    def __init__(self, spec: Spec, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.rng = rng or random.Random(0)

    def schema(self, node: Any, *, _seen: frozenset[int] = frozenset()) -> dict[str, Any]:
        """``node`` with its ``$ref`` chain followed and ``allOf`` merged."""
        node, _ = self.spec.resolve(node, "")
        if not isinstance(node, dict):
            return {}
        if id(node) in _seen:
            raise SpecProblem("a schema's allOf refers back to itself")
        if isinstance(node.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                merge_into(merged, self.schema(part, _seen=_seen | {id(node)}))
            return merged
        return node

    def value(self, node: Any, *, depth: int = 0, use_examples: bool = True, full: bool = True) -> Any:
        schema = self.schema(node)
        if use_examples:
            for key in ("example", "default"):
                if key in schema:
                    return schema[key]
            if isinstance(schema.get("examples"), list) and schema["examples"]:
                return schema["examples"][0]
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("oneOf", "anyOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                # The first branch, with the keywords beside oneOf/anyOf that apply to it too.
                merged = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
                merge_into(merged, self.schema(schema[key][0]))
                return self.value(merged, depth=depth + 1, use_examples=use_examples, full=full)
        kind = type_of(schema)
        if kind == "object":
            return self._object(schema, depth, use_examples, full)
        if kind == "array":
            return self._array(schema, depth, use_examples, full)
        if kind == "integer":
            return int(self._number(schema, integer=True))
        if kind == "number":
            return self._number(schema, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema)

    def _object(self, schema: dict[str, Any], depth: int, use_examples: bool, full: bool) -> dict[str, Any]:
        declared = schema.get("properties")
        properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or (full and depth < MAX_DEPTH):
                if self.schema(sub).get("readOnly"):
                    continue
                out[name] = self.value(sub, depth=depth + 1, use_examples=use_examples, full=full)
        extra = schema.get("additionalProperties")
        for name in required:  # required but not described: whatever additionalProperties allows
            if name not in out and name not in properties:
                out[name] = self.value(
                    extra if isinstance(extra, dict) else {"type": "string"}, depth=depth + 1
                )
        return out

    def _array(self, schema: dict[str, Any], depth: int, use_examples: bool, full: bool) -> list[Any]:
        low = _count(schema.get("minItems"), 0)
        high = _count(schema.get("maxItems"), MAX_ITEMS)
        count = min(max(low, 1 if depth < MAX_DEPTH else 0), high)
        items = schema.get("items", {})
        if not schema.get("uniqueItems"):
            return [
                self.value(items, depth=depth + 1, use_examples=use_examples, full=full) for _ in range(count)
            ]
        item_schema = self.schema(items)
        pool = item_schema.get("enum") if isinstance(item_schema.get("enum"), list) else None
        if pool is not None:
            distinct: list[Any] = []
            for candidate in pool:
                if candidate not in distinct:
                    distinct.append(candidate)
            return distinct[:count]
        out: list[Any] = []
        for _ in range(count * 4):
            candidate = self.value(items, depth=depth + 1, use_examples=False, full=full)
            if candidate not in out:
                out.append(candidate)
            if len(out) == count:
                break
        return out

    def _number(self, schema: dict[str, Any], *, integer: bool) -> float:
        low = _number_or_none(schema.get("minimum"))
        high = _number_or_none(schema.get("maximum"))
        step = 1 if integer else 0.5
        nudge = step if integer else 1e-6
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if (exclusive := _number_or_none(ex_low)) is not None:  # 3.1: the bound itself
            low = exclusive + nudge
        elif ex_low is True and low is not None:  # 3.0 and 2.0: a flag on minimum
            low = low + nudge
        if (exclusive := _number_or_none(ex_high)) is not None:
            high = exclusive - nudge
        elif ex_high is True and high is not None:
            high = high - nudge
        if low is None:
            low = 1 if high is None or high >= 1 else high - 10
        if high is None:
            high = low + 99
        multiple = _number_or_none(schema.get("multipleOf"))
        if multiple is not None and multiple > 0:
            # A whole number of multiples inside the bounds, computed without float drift.
            unit = Decimal(str(multiple))
            first = math.ceil(Decimal(str(low)) / unit)
            last = math.floor(Decimal(str(high)) / unit)
            k = self.rng.randint(first, max(first, last))
            value = k * unit
            return int(value) if integer or value == value.to_integral_value() else float(value)
        if integer:
            first, last = math.ceil(low), math.floor(high)
            return self.rng.randint(first, max(first, last))
        return round(self.rng.uniform(float(low), float(high)), 2) if high - low > 0.02 else float(low)

    def _string(self, schema: dict[str, Any]) -> str:
        low = min(_count(schema.get("minLength"), 1), MAX_LENGTH)
        high = max(_count(schema.get("maxLength"), max(low, 12)), low)
        fmt = schema.get("format")
        if fmt == "uuid":
            a, b, c, d, tail = (self.rng.getrandbits(bits) for bits in (32, 16, 12, 12, 48))
            return f"{a:08x}-{b:04x}-4{c:03x}-8{d:03x}-{tail:012x}"
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        if isinstance(schema.get("pattern"), str):
            return from_pattern(schema["pattern"], self.rng, min_length=low)
        text = "crucible" + "".join(self.rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(4))
        if len(text) < low:
            text += "x" * (low - len(text))
        return text[:high]


def merge_into(target: dict[str, Any], part: dict[str, Any]) -> None:
    """Merge a subschema into ``target``: properties and required add up, the rest fills gaps."""
    if isinstance(part.get("properties"), dict):
        target["properties"] = {**(target.get("properties") or {}), **part["properties"]}
    if isinstance(part.get("required"), list):
        target["required"] = [*(target.get("required") or []), *part["required"]]
    for key, value in part.items():
        if key not in ("properties", "required"):
            target.setdefault(key, value)


def _count(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return min(value, MAX_ITEMS if default <= MAX_ITEMS else MAX_LENGTH)


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if isinstance(value, float) else value


#: Type names that specs get wrong often enough to be worth understanding (the spec problem
#: is still reported against the operation).
_TYPE_ALIASES = {
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "bool": "boolean",
    "str": "string",
    "file": "string",
    "dict": "object",
    "list": "array",
}


def type_of(schema: dict[str, Any]) -> str | None:
    """The schema's type (the first that is not null), inferred from its keywords if unsaid."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return _TYPE_ALIASES.get(kind, kind)
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    if "minimum" in schema or "maximum" in schema:
        return "number"
    return None


def from_pattern(pattern: str, rng: random.Random, *, min_length: int = 0) -> str:
    """A string that matches ``pattern`` (classes, repeats, groups, alternation), if one is found.

    JSON Schema patterns match anywhere in the string, so the result is checked with a
    search; when it falls short of ``min_length``, open-ended repeats are stretched.
    """
    try:
        parsed = sre.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise SpecProblem(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    best = ""
    for stretch in (0, 4, 16, 64, 256):
        text = _emit(parsed, rng, stretch)
        if compiled.search(text) and len(text) >= min_length:
            return text
        best = best or text
    return best


#: Characters tried, in order, for a character class.
_CANDIDATES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~ @/:+"


def _emit(items: Any, rng: random.Random, stretch: int) -> str:
    out: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append(next(c for c in _CANDIDATES if ord(c) != arg))
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_from_class(arg, rng))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            top = low + 3 + stretch if high == sre.MAXREPEAT else min(high, low + 3 + stretch)
            count = rng.randint(max(low, 1 if stretch else low), max(low, top)) if top else 0
            out.extend(_emit(sub, rng, stretch) for _ in range(count))
        elif name == "SUBPATTERN":
            out.append(_emit(arg[-1], rng, stretch))
        elif name == "BRANCH":
            out.append(_emit(arg[1][0], rng, stretch))
    return "".join(out)


def _from_class(items: Any, rng: random.Random) -> str:
    negated = any(str(op) == "NEGATE" for op, _ in items)
    members = [(str(op), arg) for op, arg in items if str(op) != "NEGATE"]
    start = rng.randrange(len(_CANDIDATES))
    for candidate in _CANDIDATES[start:] + _CANDIDATES[:start]:
        if _in_class(candidate, members) != negated:
            return candidate
    return "a"


def _in_class(char: str, members: list[tuple[str, Any]]) -> bool:
    code = ord(char)
    for name, arg in members:
        if name == "LITERAL" and code == arg:
            return True
        if name == "RANGE" and arg[0] <= code <= arg[1]:
            return True
        if name == "CATEGORY":
            category = str(arg)
            test = (
                char.isdigit()
                if "DIGIT" in category
                else char.isspace()
                if "SPACE" in category
                else (char.isalnum() or char == "_")
            )
            if test != ("NOT" in category):
                return True
    return False
