"""An in-process control API and a raw echo server to put proxies in front of.

Shared by the control API's tests and the activities' tests (tests/activities).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from crucible.chaos_proxy import ProxyRegistry, create_app
from tests.support.echo import echo_server

CONTROL_URL = "http://chaos-proxy"


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async with echo_server() as port:
        yield port


@pytest.fixture
async def control() -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh control API, served in-process over the ASGI transport."""
    app = create_app()
    registry: ProxyRegistry = app.state.registry
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONTROL_URL) as client:
        yield client
    await registry.close()


async def round_trip(address: str, payload: bytes = b"ping") -> tuple[bytes, float]:
    """Sends ``payload`` through ``host:port`` and reads the echo; returns it and the seconds taken."""
    host, _, port = address.rpartition(":")
    loop = asyncio.get_running_loop()
    start = loop.time()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()
    return data, loop.time() - start
