"""Real loopback servers for the target policy tests: a target that may be called, canaries that may not.

Linux routes all of 127.0.0.0/8 to the loopback interface, so the allowed target listens on
127.0.0.2 and the canaries on 127.0.0.1 and ::1 at the SAME port: a hostile URL that names
127.0.0.1 in any spelling is refused for its address alone, not because of its port.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

TARGET_HOST = "127.0.0.2"


class Recorder:
    """Counts every TCP connection and keeps every request head a server received."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str]] = []  # (request line, Host header)


def handler(
    recorder: Recorder, answer: Callable[[str], tuple[int, dict[str, str], bytes]]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recorder.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
                }
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                recorder.requests.append((lines[0], headers.get("host", "")))
                status, extra, payload = answer(lines[0].split(" ")[1])
                if lines[0].startswith("POST"):
                    payload = body
                out = [f"HTTP/1.1 {status} X", f"content-length: {len(payload)}"]
                out += [f"{key}: {value}" for key, value in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


def target_answer(path: str) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(path)
    if parts.path == "/redirect":
        return 302, {"location": parse_qs(parts.query)["to"][0]}, b""
    if parts.path == "/hop":
        return 302, {"location": "/"}, b""
    return 200, {"content-type": "text/plain"}, b"target ok"


def _canary_answer(path: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"canary reached"


class Servers:
    """The allowed target (127.0.0.2:port), canaries at 127.0.0.1:port and [::1]:port, and a
    canary on another port of the target's address (127.0.0.2:other_port)."""

    def __init__(self) -> None:
        self.target = Recorder()
        self.canary = Recorder()
        self.port = 0
        self.other_port = 0
        self._servers: list[asyncio.Server] = []

    @property
    def target_url(self) -> str:
        return f"http://{TARGET_HOST}:{self.port}"

    async def start(self) -> None:
        target = handler(self.target, target_answer)
        canary = handler(self.canary, _canary_answer)
        for _ in range(50):
            server = await asyncio.start_server(target, TARGET_HOST, 0)
            port = server.sockets[0].getsockname()[1]
            try:
                self._servers.append(await asyncio.start_server(canary, "127.0.0.1", port))
                self._servers.append(await asyncio.start_server(canary, "::1", port, family=socket.AF_INET6))
            except OSError:
                server.close()
                for extra in self._servers:
                    extra.close()
                self._servers.clear()
                continue
            self._servers.append(server)
            self.port = port
            break
        else:
            raise RuntimeError("no port free on 127.0.0.2, 127.0.0.1 and ::1 at once")
        other = await asyncio.start_server(canary, TARGET_HOST, 0)
        self.other_port = other.sockets[0].getsockname()[1]
        self._servers.append(other)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
