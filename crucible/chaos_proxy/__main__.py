"""``python -m crucible.chaos_proxy``: serve the control API until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from types import FrameType

import uvicorn

from crucible.chaos_proxy.app import create_app

DEFAULT_PORT = 8474  # Toxiproxy's, so its users find it where they expect
READY_PREFIX = "crucible chaos proxy ready on"


async def serve(host: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="on"))

    def stop(sig: int, frame: FrameType | None) -> None:
        server.should_exit = True

    # Uvicorn handles signals while it serves and raises them again after; this handler
    # covers the moments around that, so a SIGTERM still ends the process with status 0.
    signal.signal(signal.SIGTERM, stop)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        bound_port = sock.getsockname()[1]
        print(f"{READY_PREFIX} http://{host}:{bound_port}", flush=True)
    await task
    print("crucible chaos proxy stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crucible.chaos_proxy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Uvicorn raises a captured SIGINT again once it has shut down.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
