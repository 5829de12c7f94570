"""The sweep that closes the logs of runs Temporal ended without their workflow writing it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from crucible.core.kafka import EventPublisher
from crucible.core.reconcile import RunReconciler
from crucible.core.store import RunStore, fetch_all_events
from tests.conftest import EVENTS_TOPIC
from tests.support.probe import ProbeInput
from tests.support.runs import kafka_events, start_probe, wait_for_event
from tests.support.servers import KafkaBroker


async def test_a_sweep_closes_terminated_runs_nobody_looked_at(
    client: Client,
    worker: Worker,
    task_queue: str,
    store: RunStore,
    publisher: EventPublisher,
    kafka: KafkaBroker,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    written = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    await wait_for_event(store, written.id, "STATE_CHANGED")
    never_ran = await start_probe(client, f"{task_queue}-no-worker", ProbeInput(steps=1))
    for handle in (written, never_ran):
        await handle.terminate(reason="cleanup")

    async def statuses() -> list[str | None]:
        return [getattr(await store.get_run(h.id), "status", None) for h in (written, never_ran)]

    reconciler = RunReconciler(store, client, publisher)
    async with asyncio.timeout(30):  # Temporal's visibility of closed runs lags a little
        while await statuses() != ["TERMINATED", "TERMINATED"]:
            await reconciler.sweep(since=since)
            await asyncio.sleep(0.3)

    assert [e.type for e in await fetch_all_events(store, written.id)][-1] == "FAILED"
    assert [e.type for e in await fetch_all_events(store, never_ran.id)] == ["FAILED"]
    assert (await kafka_events(kafka.bootstrap, EVENTS_TOPIC, never_ran.id))[-1]["type"] == "FAILED"
    assert await reconciler.sweep(since=since) == 0  # nothing left to do, nothing done twice
