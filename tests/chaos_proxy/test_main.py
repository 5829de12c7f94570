"""``python -m crucible.chaos_proxy`` as its own process: ready line, real traffic, SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.chaos_proxy.support import round_trip
from tests.support.chaos import ChaosProxyProcess

pytestmark = pytest.mark.timeout(20)


async def test_the_process_serves_until_sigterm(echo_port: int) -> None:
    proxy = await ChaosProxyProcess.start()  # its first line says where its control API listens
    process = proxy.process
    try:
        assert (await proxy.control.get("/health")).status_code == 200
        created = await proxy.control.post(
            "/proxies", json={"name": "echo", "upstream": f"127.0.0.1:{echo_port}"}
        )
        listen = created.json()["listen"]
        assert (await round_trip(listen))[0] == b"ping"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        with pytest.raises(OSError):
            await round_trip(listen)  # the proxy went with the process
    finally:
        await proxy.stop()
