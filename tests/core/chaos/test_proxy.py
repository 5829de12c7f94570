"""FaultProxy against real local servers: a raw echo server and a small aiohttp app."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from crucible.core.chaos import (
    Bandwidth,
    Blackhole,
    FaultProxy,
    HttpErrors,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
)
from tests.support.echo import echo_server

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async with echo_server() as port:
        yield port


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    yield sock.getsockname()[1]
    await runner.cleanup()


@pytest.fixture
async def echo_proxy(echo_port: int) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo_port, rng=random.Random(7)) as proxy:
        yield proxy


@pytest.fixture
async def http_proxy(http_port: int) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", http_port, rng=random.Random(7)) as proxy:
        yield proxy


def _url(proxy: FaultProxy, path: str = "/hello") -> str:
    host, port = proxy.listen_address
    return f"http://{host}:{port}{path}"


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*proxy.listen_address)


async def _round_trip(proxy: FaultProxy, payload: bytes) -> bytes:
    reader, writer = await _connect(proxy)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def _timed_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    started = time.monotonic()
    writer.write(b"ping")
    await writer.drain()
    assert await reader.readexactly(4) == b"ping"
    return time.monotonic() - started


async def test_forwards_bytes_unchanged_on_many_concurrent_connections(echo_proxy: FaultProxy) -> None:
    payloads = [os.urandom(100_000 + i) for i in range(50)]
    echoed = await asyncio.gather(*(_round_trip(echo_proxy, p) for p in payloads))
    assert echoed == payloads
    stats = echo_proxy.stats
    assert stats.connections_total == 50
    assert stats.bytes_upstream == stats.bytes_downstream == sum(map(len, payloads))


async def test_latency_delays_each_direction_by_at_least_its_ms(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("slow", Latency(ms=200, jitter_ms=50))
    reader, writer = await _connect(echo_proxy)
    assert await _timed_echo(reader, writer) >= 0.2
    echo_proxy.add_fault("slow-up", Latency(ms=150, direction="upstream"))
    assert await _timed_echo(reader, writer) >= 0.35
    writer.close()
    assert echo_proxy.stats.fault_hits == {"slow": 1, "slow-up": 1}


async def test_latency_delays_each_chunk_from_its_arrival_not_after_the_one_before(
    echo_proxy: FaultProxy,
) -> None:
    """A response written in several pieces arrives one latency late, as over a slow link,
    not one latency per piece."""
    echo_proxy.add_fault("slow", Latency(ms=300))
    reader, writer = await _connect(echo_proxy)
    started = time.monotonic()
    for piece in (b"one ", b"two ", b"three"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)
    assert await reader.readexactly(13) == b"one two three"
    took = time.monotonic() - started
    writer.close()
    assert 0.3 <= took < 0.6, f"three pieces took {took:.3f} s through a 300 ms latency"


async def test_latency_applies_to_live_connections_and_goes_with_its_removal(echo_proxy: FaultProxy) -> None:
    reader, writer = await _connect(echo_proxy)
    await _timed_echo(reader, writer)
    echo_proxy.add_fault("slow", Latency(ms=1000))
    assert await _timed_echo(reader, writer) >= 1.0
    echo_proxy.remove_fault("slow")
    assert await _timed_echo(reader, writer) < 1.0
    writer.close()


async def test_bandwidth_paces_the_data(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("thin", Bandwidth(kbps=80))  # 10 000 bytes a second
    started = time.monotonic()
    assert await _round_trip(echo_proxy, b"x" * 5000) == b"x" * 5000
    assert time.monotonic() - started >= 0.45


async def test_blackhole_makes_an_http_request_time_out(http_proxy: FaultProxy) -> None:
    http_proxy.add_fault("hole", Blackhole())
    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(httpx.TimeoutException):
            await client.get(_url(http_proxy))
    http_proxy.clear()
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(_url(http_proxy))).json() == {"ok": True}


async def test_blackhole_with_a_timeout_closes_the_connection(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("hole", Blackhole(timeout_ms=200))
    reader, writer = await _connect(echo_proxy)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.read(10), 5) == b""
    writer.close()


async def test_reset_peer_resets_the_client(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("rst", ResetPeer())
    reader, writer = await _connect(echo_proxy)
    with pytest.raises(ConnectionResetError):
        writer.write(b"ping")
        await writer.drain()
        await asyncio.wait_for(reader.read(10), 5)
    writer.close()
    assert echo_proxy.stats.fault_hits["rst"] == 1


async def test_reset_peer_after_a_timeout(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("rst", ResetPeer(timeout_ms=300))
    reader, writer = await _connect(echo_proxy)
    await _timed_echo(reader, writer)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), 5)
    writer.close()


async def test_removing_faults_restores_clean_forwarding(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("rst", ResetPeer())
    echo_proxy.add_fault("limit", LimitData(bytes=1))
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await _round_trip(echo_proxy, b"ping")
    assert echo_proxy.remove_fault("rst")
    assert not echo_proxy.remove_fault("rst")
    echo_proxy.clear()
    assert echo_proxy.faults == {}
    assert await _round_trip(echo_proxy, b"ping") == b"ping"


async def test_http_errors_answer_instead_of_the_target(http_proxy: FaultProxy) -> None:
    http_proxy.add_fault("errors", HttpErrors(status=503, toxicity=1))
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(_url(http_proxy))
        assert response.status_code == 503
        assert response.headers["connection"] == "close"
        assert response.text == "503 Service Unavailable\n"
        http_proxy.add_fault("errors", HttpErrors(status=503, toxicity=0))
        response = await client.get(_url(http_proxy))
        assert response.status_code == 200
        assert response.json() == {"ok": True}


async def test_http_errors_toxicity_holds_per_request_on_a_pooled_client(http_proxy: FaultProxy) -> None:
    http_proxy.add_fault("errors", HttpErrors(status=500, toxicity=0.5))
    async with httpx.AsyncClient(timeout=5) as client:
        statuses = [(await client.get(_url(http_proxy))).status_code for _ in range(40)]
    assert set(statuses) == {200, 500}
    assert http_proxy.stats.connections_total == 40


async def test_limit_data_closes_after_its_bytes(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("limit", LimitData(bytes=1000))
    reader, writer = await _connect(echo_proxy)
    writer.write(b"y" * 5000)
    await writer.drain()
    received = await asyncio.wait_for(reader.read(-1), 5)
    assert received == b"y" * 1000
    writer.close()


async def test_slicer_cuts_the_data_into_delayed_slices(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("slices", Slicer(average_size=100, size_variation=20, delay_us=20_000))
    reader, writer = await _connect(echo_proxy)
    started = time.monotonic()
    writer.write(b"z" * 1000)
    await writer.drain()
    reads: list[bytes] = []
    while sum(map(len, reads)) < 1000:
        reads.append(await asyncio.wait_for(reader.read(65536), 5))
    assert b"".join(reads) == b"z" * 1000
    assert len(reads) >= 3
    assert time.monotonic() - started >= 0.1
    writer.close()


async def test_slow_close_holds_back_the_end_of_the_stream(echo_proxy: FaultProxy) -> None:
    echo_proxy.add_fault("lingering", SlowClose(delay_ms=300))
    reader, writer = await _connect(echo_proxy)
    await _timed_echo(reader, writer)
    started = time.monotonic()
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(10), 5) == b""
    assert time.monotonic() - started >= 0.3
    writer.close()


async def test_stop_closes_live_connections(echo_port: int) -> None:
    proxy = FaultProxy("127.0.0.1", echo_port)
    await proxy.start()
    reader, writer = await _connect(proxy)
    await _timed_echo(reader, writer)
    assert proxy.stats.connections_active == 1
    await asyncio.wait_for(proxy.stop(), 5)
    assert await asyncio.wait_for(reader.read(10), 5) == b""
    assert proxy.stats.connections_active == 0
    writer.close()
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.listen_address


async def test_upstream_down_resets_the_client() -> None:
    async with FaultProxy("127.0.0.1", 1) as proxy:
        reader, writer = await _connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 5)
        writer.close()
