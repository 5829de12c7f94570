"""``python -m crucible.chaos_proxy`` as its own process: ready line, real traffic, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx
import pytest

from crucible.chaos_proxy.__main__ import READY_PREFIX
from tests.chaos_proxy.support import round_trip

pytestmark = pytest.mark.timeout(20)


async def test_the_process_serves_until_sigterm(echo_port: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crucible.chaos_proxy",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith(READY_PREFIX), line
        url = line.removeprefix(READY_PREFIX).strip()
        async with httpx.AsyncClient(base_url=url) as control:
            assert (await control.get("/health")).status_code == 200
            created = await control.post(
                "/proxies", json={"name": "echo", "upstream": f"127.0.0.1:{echo_port}"}
            )
            listen = created.json()["listen"]
            assert (await round_trip(listen))[0] == b"ping"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        with pytest.raises(OSError):
            await round_trip(listen)  # the proxy went with the process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
