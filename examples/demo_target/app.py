"""A tiny shop-inventory API for Crucible's QA runs to test, described by openapi.yaml beside it.

Every response conforms to that spec except for ONE DELIBERATE DEFECT, left for a demo run to find:
``GET /products/{product_id}`` answers ``price`` as a string (``"12.50"``) where the spec says number.
``GET /products`` answers prices correctly, as numbers.

It serves Prometheus metrics at ``/metrics`` (outside the spec), for chaos experiments' SLOs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.demo_target.metrics import MetricsMiddleware, TargetMetrics

Handler = Callable[[Request], Awaitable[Response]]

SPEC_PATH = Path(__file__).with_name("openapi.yaml")

NAME_MAX = 80
TAG_MAX = 30
TAGS_MAX = 10
PRICE_MAX = 1_000_000
LIMIT_DEFAULT, LIMIT_MAX = 20, 100
ORDER_QUANTITY_MAX = 50
SEED_ORDER_ID = "8f14e45f-ceea-467a-9575-d8b0a3c1e0f2"

# ASCII only: Python's int() would also take other scripts' digits, which no client means as an id.
_INTEGER = re.compile(r"-?[0-9]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Invalid(Exception):
    """Input the spec rejects; answered 422 with the Error schema."""

    def __init__(self, error: str, field: str) -> None:
        super().__init__(error)
        self.error, self.field = error, field


class NotFound(Exception):
    """No resource has the id asked for; answered 404 with the Error schema."""


@dataclass
class Product:
    id: int
    name: str
    price: Decimal
    quantity: int
    tags: list[str]


@dataclass
class Order:
    id: str
    product_id: int
    quantity: int
    total: Decimal


@dataclass
class Store:
    products: dict[int, Product] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    next_product_id: int = 1

    @classmethod
    def seeded(cls) -> Store:
        store = cls()
        for name, price, quantity, tags in [
            ("Claw hammer", "12.50", 40, ["hardware", "tools"]),
            ("Box of nails", "3.99", 500, ["hardware"]),
            ("Garden hose", "24.00", 8, ["garden"]),
        ]:
            store.add_product(name, Decimal(price), quantity, tags)
        store.orders[SEED_ORDER_ID] = Order(SEED_ORDER_ID, 1, 2, Decimal("25.00"))
        return store

    def add_product(self, name: str, price: Decimal, quantity: int, tags: list[str]) -> Product:
        product = Product(self.next_product_id, name, price, quantity, tags)
        self.products[product.id] = product
        self.next_product_id += 1
        return product

    def product(self, product_id: int) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            raise NotFound(f"no product {product_id}") from None


# Input checks, one per schema keyword set in openapi.yaml.


def _integer(value: object, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    # JSON Schema counts 3.0 as an integer, so it is accepted; `true` is not one, though Python's bool is.
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    ):
        raise Invalid(f"{name} must be an integer", name)
    number = int(value)
    if minimum is not None and number < minimum:
        raise Invalid(f"{name} must be at least {minimum}", name)
    if maximum is not None and number > maximum:
        raise Invalid(f"{name} must be at most {maximum}", name)
    return number


def _price(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{name} must be a number", name)
    if not 0 <= value <= PRICE_MAX:
        raise Invalid(f"{name} must be between 0 and {PRICE_MAX}", name)
    # repr() gives the shortest decimal that reads back as the same float, so 19.99 stays 19.99.
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _string(value: object, name: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string", name)
    if not 1 <= len(value) <= max_length:
        raise Invalid(f"{name} must be 1 to {max_length} characters long", name)
    return value


def _tags(value: object, name: str) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(f"{name} must be an array of strings", name)
    if len(value) > TAGS_MAX:
        raise Invalid(f"{name} may hold at most {TAGS_MAX} items", name)
    return [_string(tag, f"{name}[{i}]", TAG_MAX) for i, tag in enumerate(value)]


def _object(body: object, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object", "body")
    missing, unknown = sorted(required - body.keys()), sorted(body.keys() - allowed)
    if missing:
        raise Invalid(f"{missing[0]} is required", missing[0])
    if unknown:
        raise Invalid(f"unknown field {unknown[0]}", unknown[0])
    return body


def _no_constant(name: str) -> NoReturn:
    # json.loads takes NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not valid JSON")


async def _json_body(request: Request) -> object:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise Invalid("Content-Type must be application/json", "Content-Type")
    try:
        return json.loads(await request.body(), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8 and integers too long to convert, as well as bad syntax.
        raise Invalid(f"malformed JSON body: {exc}", "body") from None


def _integer_text(raw: str, name: str, minimum: int, maximum: int | None = None) -> int:
    if not _INTEGER.fullmatch(raw):
        raise Invalid(f"{name} must be an integer", name)
    try:
        number = int(raw)
    except ValueError:  # more digits than Python converts
        raise Invalid(f"{name} is out of range", name) from None
    return _integer(number, name, minimum, maximum)


def _query_one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Invalid(f"{name} may be given once", name)
    return values[0] if values else None


def _new_product(body: object) -> tuple[str, Decimal, int, list[str]]:
    fields = _object(body, {"name", "price"}, {"name", "price", "quantity", "tags"})
    return (
        _string(fields["name"], "name", NAME_MAX),
        _price(fields["price"], "price"),
        _integer(fields.get("quantity", 0), "quantity", minimum=0),
        _tags(fields.get("tags", []), "tags"),
    )


# Responses.


def _product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "price": float(product.price),
        "quantity": product.quantity,
        "tags": list(product.tags),
    }


def _product_detail_json(product: Product) -> dict[str, Any]:
    # DELIBERATE DEFECT, for the demo run to find: this serialiser hands the Decimal price over as a
    # string "to keep the cents exact", so `$.price` is "12.50" where the spec says number. Only
    # GET /products/{product_id} uses it; do not fix it, the demo counts on finding it.
    return {**_product_json(product), "price": str(product.price)}


def _order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "total": float(order.total),
    }


class ShopApi:
    """The handlers, over one in-memory store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def list_products(self, request: Request) -> Response:
        limit_text = _query_one(request, "limit")
        limit = LIMIT_DEFAULT if limit_text is None else _integer_text(limit_text, "limit", 1, LIMIT_MAX)
        tag_text = _query_one(request, "tag")
        tag = None if tag_text is None else _string(tag_text, "tag", TAG_MAX)
        products = [p for _, p in sorted(self.store.products.items()) if tag is None or tag in p.tags]
        return JSONResponse([_product_json(p) for p in products[:limit]])

    async def create_product(self, request: Request) -> Response:
        product = self.store.add_product(*_new_product(await _json_body(request)))
        return JSONResponse(_product_json(product), status_code=201)

    async def get_product(self, request: Request) -> Response:
        return JSONResponse(_product_detail_json(self.store.product(_product_id(request))))

    async def replace_product(self, request: Request) -> Response:
        # The id is checked before the body so that a bad id is reported whatever the body holds.
        product = self.store.product(_product_id(request))
        product.name, product.price, product.quantity, product.tags = _new_product(await _json_body(request))
        return JSONResponse(_product_json(product))

    async def delete_product(self, request: Request) -> Response:
        product = self.store.product(_product_id(request))
        del self.store.products[product.id]
        return Response(status_code=204)

    async def create_order(self, request: Request) -> Response:
        fields = _object(await _json_body(request), {"product_id", "quantity"}, {"product_id", "quantity"})
        product_id = _integer(fields["product_id"], "product_id", minimum=1)
        quantity = _integer(fields["quantity"], "quantity", minimum=1, maximum=ORDER_QUANTITY_MAX)
        product = self.store.products.get(product_id)
        if product is None:
            # The product is named in the body, not the path, so its absence is the body's fault.
            raise Invalid(f"no product {product_id}", "product_id")
        order = Order(str(uuid.uuid4()), product_id, quantity, product.price * quantity)
        self.store.orders[order.id] = order
        return JSONResponse(_order_json(order), status_code=201)

    async def get_order(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        if not _UUID.fullmatch(order_id):
            raise Invalid("order_id must be a UUID", "order_id")
        order = self.store.orders.get(order_id.lower())
        if order is None:
            raise NotFound(f"no order {order_id}")
        return JSONResponse(_order_json(order))


def _product_id(request: Request) -> int:
    return _integer_text(request.path_params["product_id"], "product_id", minimum=1)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Invalid)
    return JSONResponse({"error": exc.error, "field": exc.field}, status_code=422)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=404)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own 404 and 405 are plain text; the spec promises JSON errors.
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _route(path: str, **handlers: Handler) -> Route:
    # One route per path, so that a 405 lists every method the path allows in its Allow header.
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


def create_app() -> Starlette:
    """A fresh app over a freshly seeded store."""
    spec_text = SPEC_PATH.read_text(encoding="utf-8")
    spec = yaml.safe_load(spec_text)
    api = ShopApi(Store.seeded())
    metrics = TargetMetrics()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(spec)

    async def openapi_yaml(request: Request) -> Response:
        return Response(spec_text, media_type="application/yaml")

    app = Starlette(
        routes=[
            _route("/openapi.json", GET=openapi_json),
            _route("/openapi.yaml", GET=openapi_yaml),
            _route("/health", GET=api.health),
            _route("/products", GET=api.list_products, POST=api.create_product),
            _route(
                "/products/{product_id}",
                GET=api.get_product,
                PUT=api.replace_product,
                DELETE=api.delete_product,
            ),
            _route("/orders", POST=api.create_order),
            _route("/orders/{order_id}", GET=api.get_order),
            _route("/metrics", GET=metrics.endpoint),
        ],
        exception_handlers={Invalid: _invalid, NotFound: _not_found, HTTPException: _http_error},
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
    )
    # A redirect from /products/ to /products is a 307 the spec does not declare.
    app.router.redirect_slashes = False
    return app


app = create_app()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo target: ``python -m examples.demo_target --host 127.0.0.1 --port 8099``."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo_target", description="Serve the demo shop-inventory API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--no-access-log", action="store_true", help="Log no line per request (steady probes send many)."
    )
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=not args.no_access_log)
