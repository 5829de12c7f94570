"""The worker's shutdown: in-flight activities finish within the grace period."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client

from crucible.core.kafka import EventPublisher
from crucible.core.store import RunStore
from crucible.worker import WorkerDeps, build_worker

started = asyncio.Event()


@dataclass
class SlowInput:
    seconds: float


@activity.defn
async def slow_step(arg: SlowInput) -> str:
    started.set()
    try:
        await asyncio.sleep(arg.seconds)
    except asyncio.CancelledError:
        return "cancelled"
    return "finished"


@workflow.defn
class SlowWorkflow:
    @workflow.run
    async def run(self, arg: SlowInput) -> str:
        return await workflow.execute_activity(slow_step, arg, start_to_close_timeout=timedelta(seconds=30))


async def test_shutdown_lets_in_flight_activities_finish(
    client: Client, store: RunStore, publisher: EventPublisher, task_queue: str
) -> None:
    worker = build_worker(
        client,
        WorkerDeps(store=store, publisher=publisher),
        task_queue=task_queue,
        workflows=[SlowWorkflow],
        activities=[slow_step],
        shutdown_grace=timedelta(seconds=10),
    )
    running = asyncio.create_task(worker.run())
    handle = await client.start_workflow(
        SlowWorkflow.run, SlowInput(seconds=1.5), id=f"slow-{task_queue}", task_queue=task_queue
    )
    await asyncio.wait_for(started.wait(), 10)
    shutdown = asyncio.create_task(worker.shutdown())
    await asyncio.wait_for(shutdown, 15)
    running.cancel()

    # The activity ran to its end, though the worker was asked to stop in the middle of it.
    history = [e async for e in handle.fetch_history_events()]
    completed = [e for e in history if e.HasField("activity_task_completed_event_attributes")]
    assert len(completed) == 1
    payload = completed[0].activity_task_completed_event_attributes.result.payloads[0].data
    assert payload == b'"finished"'  # with no grace it would have been cancelled
    await handle.terminate()
