"""Starting probe runs and reading what they wrote, for the tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer
from temporalio.client import Client, WorkflowHandle

from crucible.core.events import TERMINAL_EVENTS
from crucible.core.store import RunStore, fetch_all_events
from crucible.core.temporal import start_run
from tests.support.probe import PROBE_KIND, ProbeInput, ProbeWorkflow


async def start_probe(
    client: Client, task_queue: str, probe: ProbeInput | None = None, *, team_id: str = "default"
) -> WorkflowHandle[ProbeWorkflow, int]:
    return await start_run(
        client,
        ProbeWorkflow.run,
        probe or ProbeInput(),
        kind=PROBE_KIND,
        task_queue=task_queue,
        team_id=team_id,
    )


async def wait_for_event(store: RunStore, run_id: str, event_type: str, timeout: float = 20) -> None:
    """Wait until the run's log holds an event of ``event_type``."""
    async with asyncio.timeout(timeout):
        while True:
            if any(e.type == event_type for e in await fetch_all_events(store, run_id)):
                return
            await asyncio.sleep(0.05)


async def kafka_events(bootstrap: str, topic: str, run_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    """Every envelope of ``run_id`` on the topic (repeats included), up to its terminal event."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while not any(e["type"] in TERMINAL_EVENTS for e in found):
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        if record.key == run_id.encode():
                            found.append(json.loads(record.value))
    finally:
        await consumer.stop()
    return found
