"""A small shop for saga tests: orders, stock and payments over HTTP, honouring Idempotency-Key.

Every request is kept in ``requests``. A request with an effect (not a GET) is recorded in
``records`` the first time its key arrives; a request that repeats a key gets the first
one's answer (waiting for it if it is still being answered) and changes nothing. Tests
switch a path to ``failing`` (answered with that status, and no effect) or ``slow`` (a path,
or a method and a path: ``"DELETE /orders/o-1"``).

Stock taken for an order (``POST /stock/{sku}`` with ``order``) is given back by
``POST /stock/{sku}/release`` with the order, once; releasing what was never taken changes
nothing, as a compensation sent for an action whose outcome was uncertain must.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
STOCK = 10
T = TypeVar("T")


@dataclass
class Seen:
    method: str
    path: str
    key: str | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SagaTarget:
    requests: list[Seen] = field(default_factory=list)
    records: list[Seen] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    #: Stock taken, by order: what releasing it gives back.
    reserved: dict[str, int] = field(default_factory=dict)
    orders: dict[str, str] = field(default_factory=dict)
    _answers: dict[str, asyncio.Future[tuple[int, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=METHODS)])

    def recorded_keys(self, path_prefix: str = "") -> list[str | None]:
        """The idempotency keys recorded, in order, of requests under ``path_prefix``."""
        return [r.key for r in self.records if r.path.startswith(path_prefix)]

    def arrivals(self) -> Counter[str | None]:
        return Counter(r.key for r in self.requests)

    async def _handle(self, request: Request) -> JSONResponse:
        path = "/" + request.path_params["path"]
        key = request.headers.get("idempotency-key")
        body = await request.json() if await request.body() else None
        seen = Seen(request.method, path, key, body, dict(request.headers))
        self.requests.append(seen)
        idempotent = None if request.method == "GET" else key  # reads need no key
        if idempotent is not None and idempotent in self._answers:
            status, answer = await asyncio.shield(self._answers[idempotent])
            return JSONResponse(answer, status_code=status)
        if (failing := self._setting(self.failing, request.method, path)) is not None:
            return JSONResponse({"error": f"{path} is failing"}, status_code=failing)
        if idempotent is not None:
            self._answers[idempotent] = asyncio.get_running_loop().create_future()
            self.records.append(seen)
        if (delay := self._setting(self.slow, request.method, path)) is not None:
            await asyncio.sleep(delay)
        status, answer = self._apply(request.method, path, body or {})
        if idempotent is not None:
            self._answers[idempotent].set_result((status, answer))
        return JSONResponse(answer, status_code=status)

    @staticmethod
    def _setting(settings: dict[str, T], method: str, path: str) -> T | None:
        return settings.get(f"{method} {path}", settings.get(path))

    def _apply(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if (method, parts[0]) == ("POST", "orders"):
            order_id = f"o-{next(self._ids)}"
            self.orders[order_id] = "CREATED"
            return 201, {"id": order_id, "items": [{"sku": "sku-1", "qty": 2}]}
        if parts[0] == "orders" and len(parts) == 2:
            if method == "DELETE":
                self.orders[parts[1]] = "CANCELLED"
            if parts[1] not in self.orders:
                return 404, {"error": "no such order"}
            return 200, {"id": parts[1], "status": self.orders[parts[1]]}
        if parts[0] == "stock" and len(parts) >= 2:  # /stock/{sku}[/release]
            sku = parts[1]
            if method == "POST" and parts[2:] == ["release"]:
                change = self.reserved.pop(str(body.get("order")), 0)
            else:
                change = int(body.get("change", 0)) if method == "POST" else 0
                if change < 0 and "order" in body:
                    self.reserved[body["order"]] = -change
            if method == "POST":
                self.stock[sku] = self.stock.get(sku, STOCK) + change
            return 200, {"sku": sku, "count": self.stock.get(sku, STOCK)}
        return 200, {"ok": True, "path": path}
