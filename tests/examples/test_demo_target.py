"""The demo target keeps to its spec, rejects bad input with 422, and carries its one deliberate defect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from examples.demo_target.app import SEED_ORDER_ID, SPEC_PATH, create_app

SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
SPEC_URI = "urn:demo-target-spec"
REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
METHODS = "get|put|post|delete|patch|head|options|trace"

# Just the structure the QA runs rely on; not a full OpenAPI 3.1 meta-schema.
MINIMAL_OPENAPI_31 = {
    "type": "object",
    "required": ["openapi", "info", "paths", "components"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {"type": "object", "required": ["title", "version"]},
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"pattern": f"^({METHODS})$"},
                "additionalProperties": {
                    "type": "object",
                    "required": ["operationId", "tags", "responses"],
                    "properties": {"responses": {"type": "object", "minProperties": 1}},
                },
            },
        },
    },
}


@pytest.fixture
async def demo() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app()), base_url="http://demo"
    ) as c:
        yield c


def spec_violations(response: httpx.Response, path: str, method: str) -> list[str]:
    """How a response departs from what the spec declares for the operation, as JSON paths."""
    responses = SPEC["paths"][path][method]["responses"]
    status = str(response.status_code)
    if status not in responses:
        return [f"undeclared status {status}"]
    escaped = quote(path.replace("~", "~0").replace("/", "~1"))
    pointer = f"/paths/{escaped}/{method}/responses/{status}"
    declared = responses[status]
    if "$ref" in declared:
        pointer = declared["$ref"].removeprefix("#")
        declared = REGISTRY.resolver().lookup(f"{SPEC_URI}#{pointer}").contents
    if "content" not in declared:
        return [] if not response.content else ["a body where none is declared"]
    if response.headers.get("content-type", "").split(";")[0] != "application/json":
        return [f"content type {response.headers.get('content-type')}"]
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}/content/application~1json/schema"},
        registry=REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return sorted(error.json_path for error in validator.iter_errors(response.json()))


async def test_spec_is_minimal_openapi_31_and_served_as_is(demo: httpx.AsyncClient) -> None:
    jsonschema.validate(SPEC, MINIMAL_OPENAPI_31)
    for schema in SPEC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    operation_ids = [op["operationId"] for item in SPEC["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids)) == 8
    assert (await demo.get("/openapi.json")).json() == SPEC
    assert yaml.safe_load((await demo.get("/openapi.yaml")).text) == SPEC


NEW_PRODUCT = {"name": "Spirit level", "price": 9.95, "quantity": 3, "tags": ["tools"]}


@pytest.mark.parametrize(
    ("method", "url", "path", "body", "status"),
    [
        ("get", "/health", "/health", None, 200),
        ("get", "/products", "/products", None, 200),
        ("get", "/products?limit=1&tag=hardware", "/products", None, 200),
        ("post", "/products", "/products", NEW_PRODUCT, 201),
        ("post", "/products", "/products", {"name": "Bare", "price": 0}, 201),
        ("put", "/products/2", "/products/{product_id}", NEW_PRODUCT, 200),
        ("delete", "/products/3", "/products/{product_id}", None, 204),
        ("post", "/orders", "/orders", {"product_id": 1, "quantity": 50}, 201),
        ("get", f"/orders/{SEED_ORDER_ID}", "/orders/{order_id}", None, 200),
        ("get", "/products/999", "/products/{product_id}", None, 404),
        ("delete", "/products/999", "/products/{product_id}", None, 404),
        ("get", "/orders/00000000-0000-4000-8000-000000000000", "/orders/{order_id}", None, 404),
    ],
)
async def test_valid_requests_get_their_declared_status(
    demo: httpx.AsyncClient, method: str, url: str, path: str, body: object, status: int
) -> None:
    response = await demo.request(method.upper(), url, json=body)
    assert response.status_code == status, response.text
    assert spec_violations(response, path, method) == []


async def test_the_examples_in_the_spec_name_seed_data(demo: httpx.AsyncClient) -> None:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            params = [
                REGISTRY.resolver().lookup(f"{SPEC_URI}{p['$ref']}").contents if "$ref" in p else p
                for p in operation.get("parameters", [])
            ]
            url = path.format(**{p["name"]: p["example"] for p in params if p["in"] == "path"})
            query = {p["name"]: p["example"] for p in params if p["in"] == "query"}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            response = await demo.request(method.upper(), url, params=query, json=body.get("example"))
            assert response.status_code < 300, (method, url, response.text)


@pytest.mark.parametrize(
    ("method", "url", "path", "body", "field"),
    [
        ("post", "/products", "/products", {"price": 1}, "name"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "name": ""}, "name"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "name": "x" * 81}, "name"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "price": -0.01}, "price"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "price": "9.95"}, "price"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "quantity": True}, "quantity"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "quantity": 1.5}, "quantity"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "tags": ["ok", 7]}, "tags[1]"),
        ("post", "/products", "/products", {**NEW_PRODUCT, "colour": "red"}, "colour"),
        ("post", "/products", "/products", [NEW_PRODUCT], "body"),
        ("put", "/products/1", "/products/{product_id}", {"name": "No price"}, "price"),
        ("get", "/products?limit=0", "/products", None, "limit"),
        ("get", "/products?limit=101", "/products", None, "limit"),
        ("get", "/products?limit=ten", "/products", None, "limit"),
        ("get", "/products?tag=", "/products", None, "tag"),
        ("get", "/products/abc", "/products/{product_id}", None, "product_id"),
        ("get", "/products/0", "/products/{product_id}", None, "product_id"),
        ("delete", "/products/1.0", "/products/{product_id}", None, "product_id"),
        ("post", "/orders", "/orders", {"product_id": 1, "quantity": 51}, "quantity"),
        ("post", "/orders", "/orders", {"product_id": 1, "quantity": 0}, "quantity"),
        ("post", "/orders", "/orders", {"product_id": True, "quantity": 1}, "product_id"),
        ("post", "/orders", "/orders", {"product_id": 999, "quantity": 1}, "product_id"),
        ("get", "/orders/not-a-uuid", "/orders/{order_id}", None, "order_id"),
    ],
)
async def test_invalid_input_gets_422_naming_the_field(
    demo: httpx.AsyncClient, method: str, url: str, path: str, body: object, field: str
) -> None:
    response = await demo.request(method.upper(), url, json=body)
    assert (response.status_code, response.json().get("field")) == (422, field), response.text
    assert spec_violations(response, path, method) == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"name": "x", "price": ', "application/json"),
        (b'{"name": "x", "price": NaN}', "application/json"),
        (b"name=x&price=1", "application/x-www-form-urlencoded"),
        (b'{"name": "x", "price": 1}', "text/plain"),
    ],
)
async def test_malformed_json_and_other_content_types_get_422(
    demo: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await demo.post("/products", content=content, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert spec_violations(response, "/products", "post") == []


async def test_the_deliberate_defect_price_is_a_string_on_get_product_only(demo: httpx.AsyncClient) -> None:
    one = await demo.get("/products/1")
    assert one.status_code == 200
    assert one.json()["price"] == "12.50"
    assert spec_violations(one, "/products/{product_id}", "get") == ["$.price"]

    listed = await demo.get("/products")
    assert [p["price"] for p in listed.json()] == [12.5, 3.99, 24.0]
    assert spec_violations(listed, "/products", "get") == []
