"""Reading specs: the three versions, their $refs, and broken parts that still yield operations."""

from __future__ import annotations

import json

import pytest

from crucible.core.qa.spec import NotASpecError, Spec, parse_document
from tests.support.qa import DEMO_SPEC, SPECS


@pytest.mark.parametrize(
    ("name", "version", "operations"),
    [
        ("swagger-2.0-petstore.json", "2.0", 20),
        ("openapi-3.0-petstore.yaml", "3.0", 19),
        ("openapi-3.1-scalar-galaxy.yaml", "3.1", 10),
        ("openapi-3.1-open-payments-resource-server.yaml", "3.1", 10),
    ],
)
def test_real_specs_of_each_version_parse_with_every_ref_resolved(
    name: str, version: str, operations: int
) -> None:
    spec = Spec(parse_document((SPECS / name).read_bytes()))
    assert spec.version == version
    assert len(spec.operations) == operations
    assert [op.key for op in spec.operations if op.problems] == []
    for op in spec.operations:
        for response in op.responses.values():
            if response.pointer:
                spec.validator_for(response.pointer)  # builds: every $ref inside resolves lazily


def test_swagger_body_and_form_parameters_become_the_request_body() -> None:
    spec = Spec(parse_document((SPECS / "swagger-2.0-petstore.json").read_bytes()))
    ops = {op.key: op for op in spec.operations}
    assert ops["POST /pet"].body is not None and ops["POST /pet"].body.media_type == "application/json"
    form = ops["POST /pet/{petId}"].body
    assert form is not None and form.media_type == "application/x-www-form-urlencoded"
    assert spec.base_path == "/v2"


def test_a_document_that_is_not_a_spec_is_rejected_with_every_reason() -> None:
    with pytest.raises(NotASpecError) as caught:
        Spec(parse_document("name: not a spec\npaths: 3\n"))
    where = [w for w, _ in caught.value.reasons]
    assert where == ["spec.openapi", "spec.paths"]
    with pytest.raises(NotASpecError, match="neither JSON nor YAML"):
        parse_document("{ this: is: : not yaml")
    with pytest.raises(NotASpecError, match="unsupported version"):
        Spec({"openapi": "4.0.0", "paths": {}})


def test_broken_parts_are_problems_of_the_operations_they_affect() -> None:
    doc = json.loads(json.dumps(parse_document(DEMO_SPEC.read_text())))
    doc["paths"]["/products/{product_id}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] = {"$ref": "#/components/schemas/Nowhere"}
    doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"quantity": {"type": "integr"}},
    }
    spec = Spec(doc)
    problems = {op.key: op.problems for op in spec.operations if op.problems}
    assert set(problems) == {"GET /products/{product_id}", "POST /orders"}
    assert "#/components/schemas/Nowhere" in problems["GET /products/{product_id}"][0]
    assert "invalid schema" in problems["POST /orders"][0] and "integr" in problems["POST /orders"][0]


def test_openapi_30_nullable_is_honoured_when_validating() -> None:
    spec = Spec(
        {
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {},
            "components": {
                "schemas": {
                    "A": {"type": "object", "properties": {"x": {"type": "string", "nullable": True}}}
                }
            },
        }
    )
    validator = spec.validator_for("/components/schemas/A")
    assert validator.is_valid({"x": None}) and not validator.is_valid({"x": 3})


def test_read_only_and_write_only_properties_are_required_one_way_each() -> None:
    user = {
        "type": "object",
        "required": ["id", "password"],
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "password": {"type": "string", "writeOnly": True},
        },
    }
    spec = Spec({"openapi": "3.1.0", "info": {}, "paths": {}, "components": {"schemas": {"User": user}}})
    assert spec.validator_for("/components/schemas/User").is_valid({"id": 1})  # what a server returns
    assert spec.validator_for("/components/schemas/User", request=True).is_valid(
        {"password": "x"}
    )  # a client sends
    assert not spec.validator_for("/components/schemas/User").is_valid({"password": "x"})


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
@pytest.mark.parametrize("compiles", [True, False])
def test_a_request_check_gives_python_validators_verdicts_with_formats(version: str, compiles: bool) -> None:
    """A compiled validator goes first, without formats; Python's has the last word. A schema
    that does not compile (a regex only Python reads) is Python's alone."""
    order = {
        "type": "object",
        "required": ["id", "email", "count"],
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "email": {"type": "string", "format": "email"},
            "count": {"type": "integer", "minimum": 1},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$" if compiles else "^[A-Z]{3}\\Z"},
        },
    }
    spec = Spec({"openapi": version, "info": {}, "paths": {}, "components": {"schemas": {"Order": order}}})
    check = spec.request_check("/components/schemas/Order")
    python = spec.validator_for("/components/schemas/Order", request=True)
    assert (check is python) is not compiles
    for body in (
        {"email": "a@example.com", "count": 2},  # readOnly id not required of a client
        {"email": "not an address", "count": 2},  # only the format is wrong
        {"email": "a@example.com", "count": 0},
        {"email": "a@example.com"},
        {"email": 5, "count": "2"},
        {"email": "a@example.com", "count": 2, "code": "ABC"},
        {"email": "a@example.com", "count": 2, "code": "abc"},
    ):
        assert check.is_valid(body) is python.is_valid(body), body
    assert check.is_valid({"email": "a@example.com", "count": 2})
    assert not check.is_valid({"email": "not an address", "count": 2})
