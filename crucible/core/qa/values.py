"""Values built from JSON Schemas: valid ones for positive scenarios, deterministic per seed."""

from __future__ import annotations

import random
import re
from re import _parser as sre  # type: ignore[attr-defined]  # the regex parser, sre_parse before 3.11
from typing import Any

from crucible.core.qa.spec import Spec, SpecProblem

#: Below this depth objects get their required properties only, so recursive schemas end.
MAX_DEPTH = 6
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
    """Builds a valid value for a schema in ``spec``, following ``$ref``s."""

    def __init__(self, spec: Spec, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.rng = rng or random.Random(0)

    def schema(self, node: Any) -> dict[str, Any]:
        """``node`` with its ``$ref`` chain followed and ``allOf`` merged."""
        node, _ = self.spec.resolve(node, "")
        if not isinstance(node, dict):
            return {}
        if "allOf" in node and isinstance(node["allOf"], list):
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                part = self.schema(part)
                merged.setdefault("properties", {}).update(part.get("properties") or {})
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                for key, value in part.items():
                    if key not in ("properties", "required"):
                        merged.setdefault(key, value)
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
                return self.value(schema[key][0], depth=depth + 1, use_examples=use_examples, full=full)
        kind = type_of(schema)
        if kind == "object":
            return self._object(schema, depth, use_examples, full)
        if kind == "array":
            items = schema.get("items", {})
            count = (
                max(int(schema.get("minItems", 1)), 1)
                if depth < MAX_DEPTH
                else int(schema.get("minItems", 0))
            )
            return [
                self.value(items, depth=depth + 1, use_examples=use_examples, full=full) for _ in range(count)
            ]
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
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or (full and depth < MAX_DEPTH):
                if self.schema(sub).get("readOnly"):
                    continue
                out[name] = self.value(sub, depth=depth + 1, use_examples=use_examples, full=full)
        return out

    def _number(self, schema: dict[str, Any], *, integer: bool) -> float:
        low = schema.get("minimum")
        high = schema.get("maximum")
        step = 1 if integer else 0.5
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool):
            low = ex_low + step
        elif ex_low is True and low is not None:
            low = low + step
        if isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool):
            high = ex_high - step
        elif ex_high is True and high is not None:
            high = high - step
        if low is None:
            low = 1 if high is None or high >= 1 else high - 10
        if high is None:
            high = low + 99
        value: float = (
            self.rng.randint(int(low), int(max(low, high)))
            if integer
            else round(self.rng.uniform(float(low), float(high)), 2)
        )
        multiple = schema.get("multipleOf")
        if isinstance(multiple, (int, float)) and multiple > 0:
            value = multiple * max(1, round(value / multiple))
        return value

    def _string(self, schema: dict[str, Any]) -> str:
        low = int(schema.get("minLength", 1))
        high = int(schema.get("maxLength", max(low, 12)))
        fmt = schema.get("format")
        if fmt == "uuid":
            a, b, c, d, tail = (self.rng.getrandbits(bits) for bits in (32, 16, 12, 12, 48))
            text = f"{a:08x}-{b:04x}-4{c:03x}-8{d:03x}-{tail:012x}"
        elif isinstance(fmt, str) and fmt in _FORMATS:
            text = _FORMATS[fmt]
        elif isinstance(schema.get("pattern"), str):
            text = from_pattern(schema["pattern"], self.rng)
        else:
            text = "crucible" + "".join(self.rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(4))
        if len(text) < low:
            text += "x" * (low - len(text))
        return text[: max(high, low)] if "pattern" not in schema and fmt not in _FORMATS else text


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


def from_pattern(pattern: str, rng: random.Random) -> str:
    """A string that matches ``pattern`` (anchors, classes, repeats, groups, alternation)."""
    try:
        parsed = sre.parse(pattern)
    except re.error as exc:
        raise SpecProblem(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return _emit(parsed, rng)


def _emit(items: Any, rng: random.Random) -> str:
    out: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_from_class(arg, rng))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            count = low if high == sre.MAXREPEAT else rng.randint(low, min(high, low + 3))
            count = max(count, 1) if low == 0 and high != 0 and high == sre.MAXREPEAT else count
            out.extend(_emit(sub, rng) for _ in range(count))
        elif name == "SUBPATTERN":
            out.append(_emit(arg[-1], rng))
        elif name == "BRANCH":
            out.append(_emit(arg[1][0], rng))
        elif name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF"):
            continue
    return "".join(out)


def _from_class(items: Any, rng: random.Random) -> str:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(rng.randint(arg[0], arg[1]))
        if name == "CATEGORY":
            category = str(arg)
            if "DIGIT" in category and "NOT" not in category:
                return str(rng.randint(0, 9))
            if "SPACE" in category and "NOT" not in category:
                return " "
            return "a"
        if name == "NEGATE":
            return "~" if any(str(o) == "LITERAL" and a == ord("a") for o, a in items[1:]) else "a"
    return "a"
