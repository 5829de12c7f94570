"""Specs from the wild: broken in every way a parser can meet, and never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crucible.core.qa.scenarios import ACCEPT, REJECT, schema_scenarios
from crucible.core.qa.spec import NotASpecError, Spec, SpecProblem, parse_document
from tests.support.qa import SPECS


def _spec_with(schema: dict[str, Any], **operation: Any) -> Spec:
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return Spec(
        {
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/x": {"post": {"requestBody": body, "responses": {"200": ok}, **operation}}},
            "components": {"schemas": {"Loop": {"allOf": [{"$ref": "#/components/schemas/Loop"}]}}},
        }
    )


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": "x"},
        {"type": "object", "properties": ["a"]},
        {"type": "number", "minimum": "1"},
        {"type": "number", "minimum": 1e308, "maximum": 1e308},
        {"type": "array", "minItems": 100_000_000, "items": {"type": "string", "minLength": 10_000_000}},
        {"$ref": "#/components/schemas/Loop"},
        {"type": "string", "pattern": "("},
    ],
    ids=["minLength", "properties", "minimum", "huge-number", "huge-array", "allOf-loop", "bad-pattern"],
)
def test_odd_schemas_yield_scenarios_or_a_spec_problem_never_a_crash(schema: dict[str, Any]) -> None:
    spec = _spec_with(schema)
    (op,) = spec.operations
    try:
        scenarios = schema_scenarios(spec, op, seed=1)
    except SpecProblem as exc:
        assert str(exc)
        return
    assert scenarios and len(json.dumps([s.to_dict() for s in scenarios])) < 5_000_000


@pytest.mark.parametrize(
    "doc",
    [
        {"openapi": "3.0.0", "info": {}, "paths": {"/x": {"get": {"responses": ["200"]}}}},
        {
            "openapi": "3.0.0",
            "info": {},
            "servers": {"url": "/a"},
            "paths": {"/x": {"get": {"responses": {}}}},
        },
        {
            "swagger": "2.0",
            "info": {},
            "paths": {"/x": {"post": {"parameters": [{"in": "formData"}], "responses": {}}}},
        },
        {
            "openapi": "3.0.0",
            "info": {},
            "paths": {"/x": {"get": {"parameters": [{"name": "a", "in": "query", "content": {"m": 3}}]}}},
        },
    ],
    ids=["responses-list", "servers-dict", "formdata-nameless", "content-scalar"],
)
def test_unreadable_operations_are_reported_not_raised(doc: dict[str, Any]) -> None:
    spec = Spec(doc)
    assert spec.operations and all(op.problems for op in spec.operations)


def test_yaml_aliases_cannot_blow_up() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(NotASpecError, match="aliases"):
        parse_document(laughs)
    with pytest.raises(NotASpecError, match="nested deeper"):
        parse_document("[" * 5000 + "]" * 5000)
    with pytest.raises(NotASpecError):  # YAML's parser has a nesting limit of its own
        parse_document("x: " + "[" * 5000 + "]" * 5000)


@pytest.mark.parametrize(
    "path", sorted(p for p in SPECS.iterdir() if p.suffix in (".json", ".yaml")), ids=lambda p: p.name
)
def test_on_real_specs_positives_are_valid_and_negatives_invalid(path: Any) -> None:
    spec = Spec(parse_document(path.read_bytes()))
    for op in spec.operations:
        if op.body is None or not op.body.pointer or op.problems:
            continue
        check = spec.validator_for(op.body.pointer, request=True)
        for scenario in schema_scenarios(spec, op, seed=5):
            if scenario.expect == ACCEPT and scenario.has_body:
                assert check.is_valid(scenario.body), (op.key, scenario.name, scenario.body)
            if scenario.expect == REJECT and (scenario.target or "").startswith("$.body."):
                assert not check.is_valid(scenario.body), (op.key, scenario.name, scenario.body)


def test_refs_with_percent_encoding_resolve_and_server_paths_are_kept() -> None:
    spec = Spec(
        {
            "openapi": "3.0.3",
            "info": {},
            "servers": [
                {
                    "url": "https://{region}.api.example.com/{version}",
                    "variables": {"region": {"default": "eu"}, "version": {"default": "v2"}},
                }
            ],
            "paths": {"/x": {"get": {"responses": {"200": {"$ref": "#/components/responses/My%20Thing"}}}}},
            "components": {"responses": {"My Thing": {"description": "ok"}}},
        }
    )
    assert spec.base_path == "/v2"
    assert spec.operations[0].problems == []
