"""Heartbeats for activities that work through a batch: they keep going while requests wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from temporalio import activity

#: How often a running batch tells Temporal it is alive (and hears of a cancellation).
HEARTBEAT_EVERY_S = 0.5


@contextlib.contextmanager
def heartbeating() -> Iterator[None]:
    """Heartbeat in the background while the block runs, so a cancellation arrives promptly."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        task.cancel()
