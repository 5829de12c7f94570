"""Scenarios: the requests a QA run sends for one operation, each with its expected outcome.

The built-in ``schema`` generator is deterministic for a given seed. Per operation it
makes positive scenarios (examples from the spec where it gives them, otherwise values
built from the schemas) and negative ones (a required field missing, a wrong type, a
value out of range), each checked to be really invalid before it is kept.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crucible.core.qa.spec import Checks, Operation, Parameter, Spec, SpecProblem, is_json_media
from crucible.core.qa.values import ValueBuilder, type_of

ACCEPT = "accept"
REJECT = "reject"
#: At most this many negative scenarios per operation.
MAX_NEGATIVES = 12
#: Values of a wrong type, tried in order until one is invalid for the field.
_WRONG_TYPES: tuple[Any, ...] = ("not-a-number", 12345, True, ["x"], {"x": 1})


@dataclass
class Scenario:
    """One request to send and what the spec says should happen."""

    name: str
    expect: str  # ACCEPT or REJECT
    path_params: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    cookies: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    has_body: bool = False
    media_type: str | None = None
    #: For a negative scenario, where the data is wrong (``$.body.price``, ``$.query.limit``).
    target: str | None = None
    source: str = "schema"  # or "llm"

    def to_dict(self) -> dict[str, Any]:
        """Its fields, sharing their values (``asdict`` would copy every nested value)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def schema_scenarios(spec: Spec, op: Operation, *, seed: int) -> list[Scenario]:
    """The built-in generator: positive and negative scenarios for ``op``.

    Raises :class:`SpecProblem` when the operation's schemas cannot yield data at all.
    """
    try:
        return _scenarios(spec, op, seed)
    except SpecProblem:
        raise
    except Exception as exc:  # a schema no generator can use (wrong keyword types, cycles)
        raise SpecProblem(f"no data can be built for {op.key}: {type(exc).__name__}: {exc}") from None


def _scenarios(spec: Spec, op: Operation, seed: int) -> list[Scenario]:
    rng = random.Random(f"{seed}:{op.key}")
    builder = ValueBuilder(spec, rng)
    body_check = _body_validator(spec, op)
    base = _positive(builder, op, "positive: examples and full data", full=True, check=body_check)
    scenarios = [base]
    optional = any(not p.required for p in op.parameters) or (
        op.body is not None and _has_optional(builder, op)
    )
    if optional:
        scenarios.append(_positive(builder, op, "positive: required data only", full=False, check=body_check))
    scenarios.extend(_negatives(spec, builder, op, base, body_check)[:MAX_NEGATIVES])
    return scenarios


def _body_validator(spec: Spec, op: Operation) -> Checks | None:
    """What request bodies are checked against; none when the spec is too broken to say."""
    if op.body is None or not op.body.pointer or op.problems:
        return None
    return spec.request_check(op.body.pointer)


def _positive(
    builder: ValueBuilder, op: Operation, name: str, *, full: bool, check: Checks | None
) -> Scenario:
    """Valid data; the spec's examples first (``full``), unless an example breaks its own schema."""
    scenario = Scenario(name=name, expect=ACCEPT)
    for param in op.parameters:
        if not (param.required or full):
            continue
        if full and param.has_example:
            value = param.example
        else:
            value = builder.value(param.schema, use_examples=full, full=full)
        _slot(scenario, param.location)[param.name] = value if param.location != "header" else str(value)
    if op.body is not None and (op.body.required or full):
        scenario.has_body = True
        scenario.media_type = op.body.media_type
        scenario.body = op.body.example if full and op.body.has_example else None
        if scenario.body is None or (check is not None and not check.is_valid(scenario.body)):
            scenario.body = builder.value(op.body.schema, use_examples=full, full=full)
        if check is not None and not check.is_valid(scenario.body):
            scenario.body = builder.value(op.body.schema, use_examples=False, full=full)
    return scenario


def _has_optional(builder: ValueBuilder, op: Operation) -> bool:
    assert op.body is not None
    schema = builder.schema(op.body.schema)
    return not op.body.required or set(schema.get("properties") or {}) != set(schema.get("required") or [])


def _slot(scenario: Scenario, location: str) -> dict[str, Any]:
    return {
        "path": scenario.path_params,
        "query": scenario.query,
        "header": scenario.headers,
        "cookie": scenario.cookies,
    }[location]


def _negatives(
    spec: Spec, builder: ValueBuilder, op: Operation, base: Scenario, body_check: Checks | None
) -> list[Scenario]:
    out: list[Scenario] = []

    def add(name: str, target: str, mutate: Callable[[Scenario], None]) -> None:
        scenario = copy.deepcopy(base)
        scenario.name, scenario.expect, scenario.target = f"negative: {name}", REJECT, target
        mutate(scenario)
        out.append(scenario)

    def drop_body(scenario: Scenario) -> None:
        scenario.has_body, scenario.body = False, None

    if op.body is not None and op.body.required:
        add("request body missing", "$.body", drop_body)
    if op.body is not None and is_json_media(op.body.media_type) and isinstance(base.body, dict):
        out.extend(_body_negatives(builder, op, base, body_check))
    for param in op.parameters:
        if param.location not in ("query", "path"):
            continue
        slot = "path_params" if param.location == "path" else "query"
        target = f"$.{param.location}.{param.name}"

        def set_value(
            scenario: Scenario, name: str = param.name, value: Any = None, slot: str = slot
        ) -> None:
            getattr(scenario, slot)[name] = value

        if param.required and param.location == "query":
            add(
                f"required query parameter '{param.name}' missing",
                target,
                lambda s, n=param.name: s.query.pop(n, None),  # type: ignore[misc]
            )
        schema = builder.schema(param.schema)
        check = _param_validator(spec, param)
        candidates = [("of the wrong type or format", _wrong_scalar(schema)), *_out_of_range(schema)]
        for label, value in candidates:
            if value is None or (check is not None and _is_valid(check, value)):
                continue  # not wrong after all (a string may be anything): no negative scenario
            add(
                f"{param.location} parameter '{param.name}' {label}",
                target,
                lambda s, n=param.name, v=value: set_value(s, n, v),  # type: ignore[misc]
            )
    return out


def _param_validator(spec: Spec, param: Parameter) -> Checks | None:
    try:
        if spec.version != "2.0":
            return spec.request_check(param.pointer)
        # Swagger 2.0 keeps it inline, refs are rare.
        return spec.validator_class(param.schema, format_checker=spec.validator_class.FORMAT_CHECKER)
    except Exception:
        return None


def _is_valid(validator: Checks, value: Any) -> bool:
    try:
        return bool(validator.is_valid(value))
    except Exception:  # a broken schema cannot say: treat the value as wrong, as intended
        return False


def _body_negatives(
    builder: ValueBuilder, op: Operation, base: Scenario, check: Checks | None
) -> list[Scenario]:
    """Mutations of a valid body, each kept only when the schema really rejects it."""
    assert op.body is not None
    schema = builder.schema(op.body.schema)
    declared = schema.get("properties")
    properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
    base_valid = check is not None and _is_valid(check, base.body)
    out: list[Scenario] = []

    def keep(name: str, field_name: str, body: dict[str, Any]) -> bool:
        if body == base.body or (base_valid and check is not None and _is_valid(check, body)):
            return False  # the "wrong" data is valid after all: not a negative scenario
        scenario = copy.deepcopy(base)
        scenario.name, scenario.expect = f"negative: {name}", REJECT
        scenario.target, scenario.body = f"$.body.{field_name}", body
        out.append(scenario)
        return True

    for name in schema.get("required") or []:
        keep(f"required field '{name}' missing", name, {k: v for k, v in base.body.items() if k != name})
    for name, sub in properties.items():
        sub = builder.schema(sub)
        if sub.get("readOnly"):
            continue
        for value in _WRONG_TYPES:
            if keep(f"field '{name}' of the wrong type", name, {**base.body, name: value}):
                break
        for label, value in _out_of_range(sub):
            keep(f"field '{name}' {label}", name, {**base.body, name: value})
    return out


#: Strings that break a format, for parameters whose type alone cannot be wrong in a URL.
_BAD_FORMATS = {
    "uuid": "not-a-uuid",
    "date": "not-a-date",
    "date-time": "not-a-date-time",
    "email": "not-an-email",
}


def _wrong_scalar(schema: dict[str, Any]) -> Any:
    kind = type_of(schema)
    if kind in ("integer", "number"):
        return "not-a-number"
    if kind == "boolean":
        return "not-a-boolean"
    if kind == "string" and schema.get("format") in _BAD_FORMATS and "enum" not in schema:
        return _BAD_FORMATS[schema["format"]]
    return None


def _out_of_range(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    kind = type_of(schema)
    if kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.5
        if isinstance(schema.get("minimum"), (int, float)):
            out.append(("below its minimum", schema["minimum"] - step))
        if isinstance(schema.get("maximum"), (int, float)):
            out.append(("above its maximum", schema["maximum"] + step))
    elif kind == "string":
        if isinstance(schema.get("maxLength"), int):
            out.append(("longer than its maxLength", "x" * (schema["maxLength"] + 1)))
        if isinstance(schema.get("minLength"), int) and schema["minLength"] > 0:
            out.append(("shorter than its minLength", ""))
    if isinstance(schema.get("enum"), list) and schema["enum"] and kind == "string":
        out.append(("outside its enum", "not-in-the-enum"))
    return out
