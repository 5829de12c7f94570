"""A fault-injecting TCP proxy in front of one target, in the spirit of Toxiproxy.

`FaultProxy` listens on loopback and forwards every connection to its upstream. Faults
(see `crucible.core.chaos.faults`) are added and removed by name while it runs. Connection
faults (`ResetPeer`, `HttpErrors`, `Blackhole`) act on new connections; data faults
(`Latency`, `Bandwidth`, `LimitData`) and `Blackhole` also act on data of live connections,
because the pumps look at the active faults for every chunk. Removing every fault restores
clean forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

from crucible.core.chaos.faults import Blackhole, Direction, Fault, HttpErrors, ResetPeer
from crucible.core.chaos.pumps import Connection, close_writer, pump, reset_writer

DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_HEAD_TIMEOUT_S = 30.0

F = TypeVar("F", bound=Fault)


@dataclass(frozen=True)
class ProxyStats:
    """What the proxy has done so far; ``fault_hits`` counts connections each fault touched."""

    connections_total: int
    connections_active: int
    bytes_upstream: int
    bytes_downstream: int
    fault_hits: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """Forwards ``listen_host:listen_port`` to ``upstream_host:upstream_port``, injecting faults.

    Args:
        upstream_host: the target's host.
        upstream_port: the target's port.
        listen_host: where to listen; loopback unless told otherwise.
        listen_port: the port to listen on; 0 picks a free one (see `listen_address`).
        rng: the source of toxicity rolls and jitter; seed it for repeatable tests.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        rng: random.Random | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listen = (listen_host, listen_port)
        self.rng = rng or random.Random()
        self._connect_timeout_s = connect_timeout_s
        self._faults: dict[str, Fault] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections_total = 0
        self.bytes = {"upstream": 0, "downstream": 0}
        self.fault_hits: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Starts listening; `listen_address` is known once this returns."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, *self._listen)

    async def stop(self) -> None:
        """Stops listening and closes every live connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def listen_address(self) -> tuple[str, int]:
        """The ``(host, port)`` clients connect to."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the proxy is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    # -- faults ------------------------------------------------------------------------

    def add_fault(self, name: str, fault: Fault) -> None:
        """Puts ``fault`` in place under ``name``, replacing any fault of that name.

        Replacing makes a repeated add (a retried activity) harmless.
        """
        if not name:
            raise ValueError("a fault needs a name")
        self._faults[name] = fault
        self.fault_hits.setdefault(name, 0)

    def remove_fault(self, name: str) -> bool:
        """Takes the fault ``name`` away; returns whether there was one."""
        return self._faults.pop(name, None) is not None

    def clear(self) -> None:
        """Takes every fault away: the proxy forwards cleanly again."""
        self._faults.clear()

    @property
    def faults(self) -> dict[str, Fault]:
        """The faults in place now, by name."""
        return dict(self._faults)

    def active_faults(self) -> dict[str, Fault]:
        """The live mapping the pumps read; not a copy."""
        return self._faults

    @property
    def stats(self) -> ProxyStats:
        return ProxyStats(
            connections_total=self.connections_total,
            connections_active=len(self._handlers),
            bytes_upstream=self.bytes["upstream"],
            bytes_downstream=self.bytes["downstream"],
            fault_hits=dict(self.fault_hits),
        )

    def count_bytes(self, direction: Direction, n: int) -> None:
        self.bytes[direction] += n

    def hit(self, name: str) -> None:
        self.fault_hits[name] = self.fault_hits.get(name, 0) + 1

    # -- connections -------------------------------------------------------------------

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections_total += 1
        conn = Connection(self)
        upstream_writer: asyncio.StreamWriter | None = None
        reset = False
        try:
            reset_after = self._connection_fault(conn, ResetPeer)
            if reset_after is not None and reset_after.timeout_ms == 0:
                reset = True
                return
            blackhole = self._connection_fault(conn, Blackhole)
            if blackhole is not None:
                await self._swallow(client_reader, blackhole)
                return
            head = b""
            if any(isinstance(f, HttpErrors) for f in self._faults.values()):
                head = await self._read_head(client_reader)
                if not head:
                    return
                error = self._connection_fault(conn, HttpErrors)
                if error is not None:
                    await _answer_error(client_writer, error)
                    return
                head = _with_connection_close(head)
            upstream_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), self._connect_timeout_s
            )
            upstream_writer = upstream
            if head:
                upstream.write(head)
                self.count_bytes("upstream", len(head))
            pumps = [
                asyncio.create_task(pump(conn, client_reader, upstream, "upstream")),
                asyncio.create_task(pump(conn, upstream_reader, client_writer, "downstream")),
            ]
            try:
                timeout = reset_after.timeout_ms / 1000 if reset_after is not None else None
                done, pending = await asyncio.wait(
                    pumps, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
                )
                # Timed out with both pumps still running: the ResetPeer fault's time has come.
                reset = bool(pending) and reset_after is not None and all(not t.exception() for t in done)
            finally:
                for p in pumps:
                    p.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            reset = upstream_writer is None  # the target is down: tell the client at once
        except asyncio.CancelledError:
            # stop() cancels live connections; this handler is a task of its own with nothing
            # above it to tell, so it ends quietly once its sockets are closed below.
            pass
        finally:
            self._handlers.discard(task)
            if reset:
                reset_writer(client_writer)
            else:
                close_writer(client_writer)
            if upstream_writer is not None:
                close_writer(upstream_writer)

    def _connection_fault(self, conn: Connection, kind: type[F]) -> F | None:
        """The first fault of ``kind`` in place whose toxicity roll says it hits ``conn``."""
        for name, fault in list(self._faults.items()):
            if isinstance(fault, kind) and conn.rolls(name, fault):
                return fault
        return None

    async def _swallow(self, reader: asyncio.StreamReader, fault: Blackhole) -> None:
        deadline = time.monotonic() + fault.timeout_ms / 1000 if fault.timeout_ms else None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                if not await asyncio.wait_for(reader.read(65536), remaining):
                    return
            except TimeoutError:
                return

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEFAULT_HEAD_TIMEOUT_S)
        except asyncio.IncompleteReadError:
            return b""


async def _answer_error(writer: asyncio.StreamWriter, fault: HttpErrors) -> None:
    body = (fault.body or f"{fault.status} {fault.reason}\n").encode()
    writer.write(
        f"HTTP/1.1 {fault.status} {fault.reason}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: close\r\n"
        f"X-Crucible-Fault: http_errors\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


def _with_connection_close(head: bytes) -> bytes:
    """``head`` with its Connection and Keep-Alive headers replaced by ``Connection: close``."""
    lines = head[:-4].split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"
