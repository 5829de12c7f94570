"""A small HTTP target for chaos probes and actions: chosen statuses, slowness, redirects, echoes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.servers import ApiServer

ANY_METHOD = ["GET", "POST", "PUT", "DELETE", "PATCH"]
BIG_BYTES = 3 * 1024 * 1024


@dataclass
class CallTarget:
    url: str
    #: (method, path, headers) of every request, in arrival order.
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


def _app(target: CallTarget) -> Starlette:
    async def status(request: Request) -> Response:
        return Response(f"status {request.path_params['code']}", status_code=request.path_params["code"])

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "5")))
        return Response("late")

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/status/200", status_code=302)

    async def big(request: Request) -> Response:
        return Response(b"x" * BIG_BYTES)

    async def echo(request: Request) -> Response:
        return JSONResponse(
            {
                "method": request.method,
                "body": (await request.body()).decode(),
                "content_type": request.headers.get("content-type"),
                "query": dict(request.query_params),
            }
        )

    async def record(request: Request) -> None:
        target.seen.append((request.method, request.url.path, dict(request.headers)))

    routes = [
        Route("/status/{code:int}", status, methods=ANY_METHOD),
        Route("/slow", slow),
        Route("/redirect", redirect),
        Route("/big", big),
        Route("/echo", echo, methods=ANY_METHOD),
    ]

    async def recording(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await record(request)
        return await call_next(request)

    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=recording)])


@pytest.fixture(scope="module")
async def target() -> AsyncIterator[CallTarget]:
    """The call target, for one test module."""
    async with call_target() as served:
        yield served


@asynccontextmanager
async def call_target() -> AsyncIterator[CallTarget]:
    """Serve the target on a free loopback port for the block."""
    target = CallTarget("")
    server = ApiServer(_app(target))
    target.url = server.url
    await server.start()
    try:
        yield target
    finally:
        await server.stop()
