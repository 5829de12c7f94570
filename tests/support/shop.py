"""Reading the demo shop's events the way a saga test's consumer would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaConsumer

from examples.shop import ShopTopics


async def shop_events(
    bootstrap: str,
    topics: ShopTopics,
    order_id: str,
    *,
    until: Collection[str],
    settle_s: float = 0.3,
    timeout: float = 10,
) -> list[dict[str, Any]]:
    """The order's events on the shop's topics, oldest first by ``at``.

    Reads from the start of the topics until every type in ``until`` has been seen, then
    ``settle_s`` more, so that an event that should not be there (a repeat, a compensation that is
    switched off) has the time to show up.
    """
    consumer = AIOKafkaConsumer(
        *topics.all, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    settled_at: float | None = None
    try:
        async with asyncio.timeout(timeout):
            while settled_at is None or time.monotonic() < settled_at:
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    found.extend(json.loads(r.value) for r in records if r.key == order_id.encode())
                if settled_at is None and set(until) <= {e["type"] for e in found}:
                    settled_at = time.monotonic() + settle_s
    finally:
        await consumer.stop()
    return sorted(found, key=lambda e: e["at"])


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
