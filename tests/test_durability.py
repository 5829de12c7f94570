"""A worker killed in the middle of a run: the run completes on another, nothing lost or repeated."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.store import RunStore, fetch_all_events
from tests.conftest import EVENTS_TOPIC
from tests.support.dev import Child
from tests.support.probe import ProbeInput, ProbeWorkflow, ProceedInput
from tests.support.runs import kafka_events, start_probe, wait_for_event
from tests.support.servers import KafkaBroker

pytestmark = pytest.mark.timeout(180)


def worker_env(settings: Settings, task_queue: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env.update(
        CRUCIBLE_HOME=str(home),
        TEMPORAL_ADDRESS=settings.effective_temporal_address,
        DATABASE_URL=settings.effective_database_url,
        KAFKA_BOOTSTRAP_SERVERS=settings.effective_kafka_bootstrap_servers,
        CRUCIBLE_KAFKA_IDEMPOTENCE="false",
        CRUCIBLE_KAFKA_EVENTS_TOPIC=EVENTS_TOPIC,
        CRUCIBLE_TASK_QUEUE=task_queue,
        CRUCIBLE_WORKER_METRICS_PORT="0",
        CRUCIBLE_WORKER_SHUTDOWN_GRACE_S="1",
    )
    return env


async def start_worker(env: dict[str, str]) -> Child:
    worker = await Child.start(env=env, module="tests.support.probe_worker")
    await worker.wait_for(r"worker polling task queue", timeout=60)
    return worker


async def test_a_run_survives_its_worker_being_killed(
    settings: Settings, client: Client, store: RunStore, kafka: KafkaBroker, task_queue: str, tmp_path: Path
) -> None:
    env = worker_env(settings, task_queue, tmp_path)
    first = await start_worker(env)
    second: Child | None = None
    try:
        handle = await start_probe(client, task_queue, ProbeInput(steps=100, hold_s=2, wait_for_proceed=True))
        await wait_for_event(store, handle.id, "STATE_CHANGED")  # now holding an activity on `first`
        await asyncio.sleep(0.5)
        await first.kill()  # SIGKILL: no goodbye, the activity and the workflow's cache die with it

        await handle.signal(ProbeWorkflow.proceed, ProceedInput(note="after the crash"))
        second = await start_worker(env)
        assert await asyncio.wait_for(handle.result(), 90) == 100
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    events = await fetch_all_events(store, handle.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == [
        "REQUESTED",
        *["STEP"] * 100,
        "STATE_CHANGED",
        "HELD",
        "STATE_CHANGED",
        "PROCEEDED",
        "COMPLETE",
    ]
    assert events[102].data == {"attempt": 2}  # the activity ran again, on the second worker
    on_kafka = await kafka_events(kafka.bootstrap, EVENTS_TOPIC, handle.id)
    assert sorted({e["seq"] for e in on_kafka}) == [e.seq for e in events]
    run = await store.get_run(handle.id)
    assert run is not None and (run.status, run.last_seq) == ("COMPLETED", len(events))
