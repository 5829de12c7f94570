"""Small raw-socket targets whose every connection the tests can see."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from crucible.stack.services import free_port


def simple_spec(paths: list[str], *, version: str = "3.1.0") -> dict[str, Any]:
    """An OpenAPI document with one GET per path, each answering a JSON object."""
    response = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "openapi": version,
        "info": {"title": "targets", "version": "1"},
        "paths": {
            path: {"get": {"operationId": path.strip("/").replace("/", "_"), "responses": {"200": response}}}
            for path in paths
        },
    }


class HoldingTarget:
    """Answers ``/fast…`` at once and holds ``/slow…`` open until the client goes away.

    ``open`` is how many held requests are in flight right now, as the server sees them.
    """

    def __init__(self, hold_s: float = 60) -> None:
        self.port = free_port()
        self.hold_s = hold_s
        self.open = 0
        self.requests = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HoldingTarget:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/slow"):
                    self.open += 1
                    try:
                        await asyncio.wait_for(reader.read(1), self.hold_s)  # b"" when the client leaves
                    except TimeoutError:
                        pass
                    finally:
                        self.open -= 1
                    return
                body = json.dumps({"path": path}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
