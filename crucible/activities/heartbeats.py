"""Heartbeats for activities that work through a batch: they keep going while requests wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from temporalio import activity

#: How often a running batch tells Temporal it is alive (and hears of a cancellation).
#: Temporal's SDK throttles what it sends on to the server, so this costs little.
HEARTBEAT_EVERY_S = 0.5


class Heartbeat:
    """Heartbeats now and every :data:`HEARTBEAT_EVERY_S`, with the latest details given."""

    def __init__(self) -> None:
        self.details: Any = None

    def now(self, details: Any = None) -> None:
        """Heartbeat at once; ``details`` (a checkpoint, say) go with this and later beats."""
        if details is not None:
            self.details = details
        if self.details is None:
            activity.heartbeat()
        else:
            activity.heartbeat(self.details)

    @contextlib.contextmanager
    def running(self) -> Iterator[Heartbeat]:
        """Heartbeat in the background while the block runs, so a cancellation arrives promptly."""

        async def beat() -> None:
            while True:
                self.now()
                await asyncio.sleep(HEARTBEAT_EVERY_S)

        task = asyncio.get_running_loop().create_task(beat())
        try:
            yield self
        finally:
            task.cancel()


def heartbeating() -> contextlib.AbstractContextManager[Heartbeat]:
    """Heartbeat without details in the background while the block runs."""
    return Heartbeat().running()
