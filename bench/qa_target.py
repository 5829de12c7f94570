"""The QA benchmark's target: a synthetic OpenAPI 3.0 spec and a server that answers by it.

``python -m bench.qa_target --port P --delay-ms 10 --operations 200`` serves, on
127.0.0.1, the spec at ``/openapi.json`` and every operation in it. Each request waits
``--delay-ms`` (an ``asyncio.sleep``, so many wait at once), then is answered the way
the spec says: input that the spec admits gets 200 and a body that conforms to the
response schema; anything else gets 422 with the ``Error`` schema. Unknown paths get
404, undeclared methods 405 with ``Allow``. The server is aiohttp's low-level one (its
HTTP parser is C; there is no router, so paths are matched raw, percent-encoding and
all), in a process of its own, so it shares no event loop with the clients it serves.

The spec has one resource per four operations, each with:

- ``GET /rN/items``: optional query parameters with numeric ranges, an enum and a boolean;
- ``GET /rN/items/{item_id}``: an integer path parameter with a range, a string enum and
  a string with lengths and a pattern in the query;
- ``POST /rN/items``: a required JSON body with required fields, ranges and lengths;
- ``POST /rN/search``: a required query parameter and a JSON body with required ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from jsonschema import Draft4Validator

SPEC_PATH = "/openapi.json"
KINDS = ("list", "get", "create", "search")

_JSON = "application/json"
_INTEGER = re.compile(r"-?[0-9]+")


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(schema: str) -> dict[str, Any]:
    return {
        "200": {
            "description": "OK",
            "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "422": _error_response("The input is invalid"),
    }


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Item": {
            "type": "object",
            "required": ["id", "name", "price", "quantity", "tags"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                "price": {"type": "number", "minimum": 0, "maximum": 10000},
                "quantity": {"type": "integer", "minimum": 0, "maximum": 1000},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "ItemList": {
            "type": "object",
            "required": ["items", "total"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "total": {"type": "integer", "minimum": 0},
            },
        },
        "NewItem": {
            "type": "object",
            "required": ["name", "quantity", "price"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                "quantity": {"type": "integer", "minimum": 0, "maximum": 1000},
                "price": {"type": "number", "minimum": 0, "maximum": 10000},
                "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 20}},
                "note": {"type": "string", "maxLength": 200},
            },
        },
        "SearchFilter": {
            "type": "object",
            "required": ["min_price", "max_price"],
            "properties": {
                "min_price": {"type": "number", "minimum": 0, "maximum": 10000},
                "max_price": {"type": "number", "minimum": 0, "maximum": 10000},
                "min_quantity": {"type": "integer", "minimum": 0, "maximum": 1000},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
        },
    }
}


def _operation(resource: int, kind: str) -> tuple[str, str, dict[str, Any]]:
    """(path, method, operation object) of one operation of the spec."""
    base = f"/r{resource}"
    tag = f"r{resource}"
    if kind == "list":
        return (
            f"{base}/items",
            "get",
            {
                "operationId": f"listItems{resource}",
                "tags": [tag],
                "parameters": [
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    _query("offset", {"type": "integer", "minimum": 0, "maximum": 10000}),
                    _query("sort", {"type": "string", "enum": ["name", "price", "quantity"]}),
                    _query("in_stock", {"type": "boolean"}),
                ],
                "responses": _ok("ItemList"),
            },
        )
    if kind == "get":
        return (
            f"{base}/items/{{item_id}}",
            "get",
            {
                "operationId": f"getItem{resource}",
                "tags": [tag],
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000000},
                    },
                    _query("fields", {"type": "string", "enum": ["all", "summary"]}),
                    _query(
                        "currency",
                        {"type": "string", "minLength": 3, "maxLength": 3, "pattern": "^[A-Z]{3}$"},
                    ),
                ],
                "responses": _ok("Item"),
            },
        )
    if kind == "create":
        return (
            f"{base}/items",
            "post",
            {
                "operationId": f"createItem{resource}",
                "tags": [tag],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/NewItem"}}},
                },
                "responses": _ok("Item"),
            },
        )
    return (
        f"{base}/search",
        "post",
        {
            "operationId": f"searchItems{resource}",
            "tags": [tag],
            "parameters": [_query("q", {"type": "string", "minLength": 1, "maxLength": 50}, required=True)],
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/SearchFilter"}}},
            },
            "responses": _ok("ItemList"),
        },
    )


def build_spec(operations: int) -> dict[str, Any]:
    """An OpenAPI 3.0.3 document with exactly ``operations`` operations, the same every time."""
    if operations < 1:
        raise ValueError("a spec has at least one operation")
    paths: dict[str, dict[str, Any]] = {}
    for index in range(operations):
        path, method, operation = _operation(index // len(KINDS), KINDS[index % len(KINDS)])
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": f"Crucible QA benchmark target ({operations} operations)", "version": "1.0"},
        "paths": paths,
        "components": COMPONENTS,
    }


# The server.


class Invalid(Exception):
    """Input the spec does not admit: answered 422."""

    def __init__(self, error: str, where: str) -> None:
        super().__init__(error)
        self.error, self.where = error, where


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    """A validator for ``schema`` whose ``#/components/…`` references resolve."""
    return Draft4Validator({**schema, "components": COMPONENTS})


def _coerce(text: str, schema: dict[str, Any], where: str) -> Any:
    """A parameter's text as the JSON value its schema's type says, or :class:`Invalid`."""
    kind = schema.get("type")
    if kind == "integer":
        if not _INTEGER.fullmatch(text):
            raise Invalid("not an integer", where)
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise Invalid("not a number", where) from None
        if not math.isfinite(number):
            raise Invalid("not a finite number", where)
        return number
    if kind == "boolean":
        if text not in ("true", "false"):
            raise Invalid("not a boolean", where)
        return text == "true"
    return text


@dataclass
class Param:
    name: str
    location: str
    required: bool
    schema: dict[str, Any]
    validator: Draft4Validator


@dataclass
class Route:
    """One operation: how to check its input and what to answer."""

    params: list[Param]
    body: Draft4Validator | None
    answer: bytes
    path_names: list[str] = field(default_factory=list)

    def check(self, path_values: dict[str, str], query: Any, raw_body: bytes, content_type: str) -> None:
        for param in self.params:
            where = f"{param.location}.{param.name}"
            source = path_values if param.location == "path" else query
            if param.name not in source:
                if param.required:
                    raise Invalid("required", where)
                continue
            value = _coerce(source[param.name], param.schema, where)
            error = next(iter(param.validator.iter_errors(value)), None)
            if error is not None:
                raise Invalid(error.message, where)
        if self.body is None:
            return
        if not raw_body:
            raise Invalid("a JSON body is required", "body")
        if content_type != _JSON:
            raise Invalid(f"the body must be {_JSON}", "body")
        try:
            body = json.loads(raw_body)
        except ValueError:
            raise Invalid("the body is not JSON", "body") from None
        error = next(iter(self.body.iter_errors(body)), None)
        if error is not None:
            raise Invalid(error.message, "body." + ".".join(str(p) for p in error.absolute_path))


def _item(number: int) -> dict[str, Any]:
    return {"id": number, "name": f"item {number}", "price": 12.5, "quantity": 3, "tags": ["bench"]}


def _answer(operation: dict[str, Any]) -> bytes:
    schema = operation["responses"]["200"]["content"][_JSON]["schema"]["$ref"].rsplit("/", 1)[-1]
    body: dict[str, Any] = _item(1) if schema == "Item" else {"items": [_item(1), _item(2)], "total": 2}
    errors = list(_validator({"$ref": f"#/components/schemas/{schema}"}).iter_errors(body))
    assert not errors, errors  # the target's own answers conform, so only Crucible's checks can fail
    return json.dumps(body).encode()


def build_routes(spec: dict[str, Any]) -> dict[str, dict[str, tuple[re.Pattern[str], Route]]]:
    """Path template → method → (path regex, route)."""
    routes: dict[str, dict[str, tuple[re.Pattern[str], Route]]] = {}
    for template, item in spec["paths"].items():
        names = re.findall(r"{(\w+)}", template)
        pattern = re.compile(re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", template))
        for method, operation in item.items():
            params = [
                Param(p["name"], p["in"], bool(p.get("required")), p["schema"], _validator(p["schema"]))
                for p in operation.get("parameters", [])
            ]
            body = None
            if "requestBody" in operation:
                body = _validator(operation["requestBody"]["content"][_JSON]["schema"])
            route = Route(params, body, _answer(operation), names)
            routes.setdefault(template, {})[method.upper()] = (pattern, route)
    return routes


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def make_handler(operations: int, delay_s: float) -> Handler:
    """The target's one request handler (no router: paths are matched raw, segment by segment)."""
    spec = build_spec(operations)
    spec_bytes = json.dumps(spec).encode()
    routes = build_routes(spec)
    # Dispatch on the first two path segments, then the regex: no scan over every route.
    index: dict[tuple[str, ...], list[dict[str, tuple[re.Pattern[str], Route]]]] = {}
    for template, methods in routes.items():
        index.setdefault(tuple(template.strip("/").split("/")[:2]), []).append(methods)

    def error(status: int, message: str, where: str | None = None, **headers: str) -> web.Response:
        body: dict[str, str] = {"error": message}
        if where is not None:
            body["field"] = where
        return web.Response(
            body=json.dumps(body).encode(), status=status, content_type=_JSON, headers=headers
        )

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == SPEC_PATH:
            return web.Response(body=spec_bytes, content_type=_JSON)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        raw = await request.read()
        path = request.rel_url.raw_path  # still percent-encoded: an encoded "/" stays in its segment
        for methods in index.get(tuple(path.strip("/").split("/")[:2]), []):
            pattern, _ = next(iter(methods.values()))
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if request.method not in methods:
                return error(405, f"{request.method} is not allowed", Allow=", ".join(sorted(methods)))
            route = methods[request.method][1]
            values = {name: unquote(value, errors="strict") for name, value in match.groupdict().items()}
            try:
                route.check(values, request.query, raw, request.content_type)
            except Invalid as exc:
                return error(422, exc.error, exc.where)
            return web.Response(body=route.answer, content_type=_JSON)
        return error(404, f"no operation at {request.path}")

    async def safe(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await handle(request)
        except (UnicodeError, ValueError) as exc:  # undecodable input: still the client's fault
            return error(422, f"unreadable input: {exc}")

    return safe


async def serve(port: int, handler: Handler) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.ServerRunner(web.Server(handler, access_log=None), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.qa_target", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="how long each answer waits")
    parser.add_argument("--operations", type=int, default=200, help="operations in the spec")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, make_handler(args.operations, args.delay_ms / 1000)))


if __name__ == "__main__":
    main()
