"""Moving one connection's bytes through the faults in place, one chunk at a time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING

from crucible.core.chaos.faults import (
    Bandwidth,
    Blackhole,
    Direction,
    Fault,
    Latency,
    LimitData,
    Slicer,
    SlowClose,
)

if TYPE_CHECKING:
    from crucible.core.chaos.proxy import FaultProxy

CHUNK_BYTES = 64 * 1024
#: Chunks read ahead of the writer (the reader waits when they are all queued): 4 MiB at most.
QUEUED_CHUNKS = 64
# Bandwidth is paced in slices this long, so a change of rate (or its removal) shows quickly.
BANDWIDTH_SLICE_S = 0.05


class DataLimitReached(Exception):
    """A `LimitData` fault has let its bytes through; the connection closes."""


class Connection:
    """One proxied connection's view of the faults: its toxicity rolls and byte counts."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._rolls: dict[str, tuple[Fault, bool]] = {}
        self._passed: dict[str, int] = {}

    def rolls(self, name: str, fault: Fault) -> bool:
        """Whether ``fault`` hits this connection; rolled once per connection and fault.

        A fault replaced under the same name is rolled again.
        """
        seen = self._rolls.get(name)
        if seen is not None and seen[0] is fault:
            return seen[1]
        hit = fault.toxicity >= 1 or self.proxy.rng.random() < fault.toxicity
        self._rolls[name] = (fault, hit)
        if hit:
            self.proxy.hit(name)
        return hit

    def hitting(self, direction: Direction | None = None) -> list[tuple[str, Fault]]:
        """The faults in place now that hit this connection, in ``direction`` if given."""
        return [
            (name, fault)
            for name, fault in list(self.proxy.active_faults().items())
            if (direction is None or getattr(fault, "direction", direction) == direction)
            and self.rolls(name, fault)
        ]

    def passed(self, name: str, n: int) -> int:
        """Adds ``n`` to the bytes fault ``name`` has let through; returns the new total."""
        self._passed[name] = self._passed.get(name, 0) + n
        return self._passed[name]

    def limit_left(self, name: str, fault: LimitData) -> int:
        return max(0, fault.bytes - self._passed.get(name, 0))


async def pump(
    conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
) -> None:
    """Copies ``reader`` to ``writer`` through the faults until end of stream, then half-closes.

    Reading runs ahead of writing, so each chunk is stamped when it arrives: a latency delays
    every chunk by its own amount from its arrival, as a slow link would, rather than adding up
    over the chunks of one response.
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes | BaseException]] = asyncio.Queue(maxsize=QUEUED_CHUNKS)

    async def read() -> None:
        while True:
            try:
                data = await reader.read(CHUNK_BYTES)
            except Exception as exc:  # handed to the writer, which raises it in order
                await chunks.put((loop.time(), exc))
                return
            await chunks.put((loop.time(), data))
            if not data:
                return

    reading = asyncio.create_task(read())
    try:
        while True:
            arrived, data = await chunks.get()
            if isinstance(data, BaseException):
                raise data
            if not data:
                delays = [f.delay_ms for _, f in conn.hitting(direction) if isinstance(f, SlowClose)]
                if delays:
                    await asyncio.sleep(max(delays) / 1000)
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            await _forward(conn, data, writer, direction, arrived)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def _forward(
    conn: Connection, data: bytes, writer: asyncio.StreamWriter, direction: Direction, arrived: float
) -> None:
    faults = conn.hitting(direction)
    if any(isinstance(fault, Blackhole) for _, fault in faults):
        return
    limit_reached = False
    delay_ms = 0.0
    for name, fault in faults:
        if isinstance(fault, Latency):
            delay_ms += fault.ms + (conn.proxy.rng.uniform(0, fault.jitter_ms) if fault.jitter_ms else 0)
        elif isinstance(fault, LimitData):
            left = conn.limit_left(name, fault)
            if len(data) >= left:
                data, limit_reached = data[:left], True
            conn.passed(name, len(data))
    if delay_ms:
        await asyncio.sleep(max(0.0, arrived + delay_ms / 1000 - asyncio.get_running_loop().time()))
    slicer = next((f for _, f in faults if isinstance(f, Slicer)), None)
    if slicer is None:
        await _write_paced(conn, data, writer, direction)
    else:
        await _write_sliced(conn, data, writer, direction, slicer)
    if limit_reached:
        raise DataLimitReached


async def _write_paced(
    conn: Connection, data: bytes, writer: asyncio.StreamWriter, direction: Direction
) -> None:
    """Writes ``data``, at the slowest `Bandwidth` in place when there is one."""
    view = memoryview(data)
    while view:
        rates = [f.bytes_per_second for _, f in conn.hitting(direction) if isinstance(f, Bandwidth)]
        piece = view if not rates else view[: max(1, int(min(rates) * BANDWIDTH_SLICE_S))]
        writer.write(piece)
        await writer.drain()
        conn.proxy.count_bytes(direction, len(piece))
        view = view[len(piece) :]
        if rates:
            await asyncio.sleep(len(piece) / min(rates))


async def _write_sliced(
    conn: Connection, data: bytes, writer: asyncio.StreamWriter, direction: Direction, slicer: Slicer
) -> None:
    rng = conn.proxy.rng
    while data:
        size = slicer.average_size + rng.randint(-slicer.size_variation, slicer.size_variation)
        await _write_paced(conn, data[:size], writer, direction)
        data = data[size:]
        if data and slicer.delay_us:
            await asyncio.sleep(slicer.delay_us / 1_000_000)


def close_writer(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


def reset_writer(writer: asyncio.StreamWriter) -> None:
    """Closes the connection with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, RuntimeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
