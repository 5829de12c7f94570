"""An HTTP target for steady probes: answers at once, after a delay, or with any status,
and counts what it received and what is still open."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.servers import ApiServer


class SteadyTarget:
    """``/ok``; ``/slow?ms=200``; ``/status/500``. ``received`` counts requests by path, ``open``
    the requests held by ``/slow`` whose client has not gone away."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.open = 0
        self.server = ApiServer(
            Starlette(
                routes=[
                    Route("/ok", self.ok, methods=["GET", "POST"]),
                    Route("/slow", self.slow),
                    Route("/status/{code:int}", self.status),
                ]
            )
        )

    @property
    def url(self) -> str:
        return self.server.url

    def total(self) -> int:
        return sum(self.received.values())

    async def ok(self, request: Request) -> Response:
        self.received["/ok"] += 1
        await request.body()
        return PlainTextResponse("ok")

    async def slow(self, request: Request) -> Response:
        self.received["/slow"] += 1
        self.open += 1
        loop = asyncio.get_running_loop()
        until = loop.time() + int(request.query_params.get("ms", "200")) / 1000
        try:
            while (left := until - loop.time()) > 0:
                # Starlette does not stop a handler whose client left: notice it here.
                if await request.is_disconnected():
                    return Response(status_code=499)
                await asyncio.sleep(min(left, 0.05))
        finally:
            self.open -= 1
        return PlainTextResponse("slow")

    async def status(self, request: Request) -> Response:
        code = request.path_params["code"]
        self.received[f"/status/{code}"] += 1
        return PlainTextResponse(str(code), status_code=code)


@asynccontextmanager
async def steady_target() -> AsyncIterator[SteadyTarget]:
    target = SteadyTarget()
    await target.server.start()
    try:
        yield target
    finally:
        await target.server.stop()
