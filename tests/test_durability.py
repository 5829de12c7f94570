"""A worker killed in the middle of a run: the run completes on another, nothing lost or repeated."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle

from crucible.core.config import Settings
from crucible.core.store import RunStore, fetch_all_events
from tests.conftest import EVENTS_TOPIC
from tests.support.dev import Child
from tests.support.probe import ProbeInput, ProbeWorkflow, ProceedInput
from tests.support.runs import kafka_events, start_probe
from tests.support.servers import KafkaBroker

pytestmark = pytest.mark.timeout(180)


def worker_env(settings: Settings, task_queue: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env.update(
        CRUCIBLE_HOME=str(home),
        # The key that encrypts Temporal payloads: the test's client and the worker must share it.
        CRUCIBLE_SECRETS_KEY=settings.secrets_key.get_secret_value() if settings.secrets_key else "",
        TEMPORAL_ADDRESS=settings.effective_temporal_address,
        DATABASE_URL=settings.effective_database_url,
        KAFKA_BOOTSTRAP_SERVERS=settings.effective_kafka_bootstrap_servers,
        CRUCIBLE_KAFKA_IDEMPOTENCE="false",
        CRUCIBLE_KAFKA_EVENTS_TOPIC=EVENTS_TOPIC,
        CRUCIBLE_TASK_QUEUE=task_queue,
        CRUCIBLE_WORKER_METRICS_PORT="0",
        CRUCIBLE_WORKER_SHUTDOWN_GRACE_S="1",
        CRUCIBLE_TARGET_MODE="dev",  # the tests' targets are loopback servers
    )
    return env


async def activity_started(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until a worker has picked up the run's pending activity."""
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    async with asyncio.timeout(20):
        while not any(
            a.state == started for a in (await handle.describe()).raw_description.pending_activities
        ):
            await asyncio.sleep(0.05)


async def start_worker(env: dict[str, str], *args: str, module: str = "tests.support.probe_worker") -> Child:
    """A worker process (the probe's by default), once it polls."""
    worker = await Child.start(*args, env=env, module=module)
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
        await activity_started(handle)  # `first` holds the activity now
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


async def test_sigterm_lets_the_activity_in_flight_finish(
    settings: Settings, client: Client, store: RunStore, task_queue: str, tmp_path: Path
) -> None:
    env = {**worker_env(settings, task_queue, tmp_path), "CRUCIBLE_WORKER_SHUTDOWN_GRACE_S": "20"}
    first = await start_worker(env)
    second: Child | None = None
    try:
        handle = await start_probe(client, task_queue, ProbeInput(steps=1, hold_s=3))
        await activity_started(handle)  # `first` holds the activity now
        stopping = asyncio.get_running_loop().time()
        assert await first.terminate(timeout=30) == 0, first.output
        waited = asyncio.get_running_loop().time() - stopping
        assert waited > 1.5, f"stopped after {waited:.1f} s:\n{first.output}"  # it waited for the activity
        assert "in-flight activities have 20 s to finish" in first.output

        second = await start_worker(env)  # someone has to finish the workflow
        assert await asyncio.wait_for(handle.result(), 60) == 1
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    held = [e for e in await fetch_all_events(store, handle.id) if e.type == "HELD"]
    assert [e.data for e in held] == [{"attempt": 1}], first.output  # it finished; nothing ran it again
