"""The saga workflow's handling of signals that race it, with its activities replaced by name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from crucible.core.events import EventType, RecordEventsInput, RecordEventsResult, RunEvent
from crucible.core.sagas.models import AbortInput, ResolveInput, SagaInput, SagaResult
from crucible.workflows.saga import SagaWorkflow
from tests.support.saga_history import ACTIVITIES, saga, when_state

pytestmark = pytest.mark.timeout(30)


class Sink:
    """Stands in for the event sink; it holds the batch that writes ``SagaCompleted`` until told."""

    def __init__(self) -> None:
        self.batches: list[RecordEventsInput] = []
        self.writing_completed = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    @activity.defn(name="record_events")
    async def record_events(self, batch: RecordEventsInput) -> RecordEventsResult:
        if any(e.data.get("to") == "SagaCompleted" for e in batch.events):
            self.writing_completed.set()
            await self.release.wait()
        self.batches.append(batch)
        return RecordEventsResult(written=len(batch.events))

    @property
    def events(self) -> list[RunEvent]:
        by_seq = {e.seq: e for b in self.batches for e in b.events}
        return [by_seq[s] for s in sorted(by_seq)]

    def ignored(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == EventType.SIGNAL_IGNORED]


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def make_worker(client: Client, task_queue: str, sink: Sink) -> Callable[[], Worker]:
    return lambda: Worker(
        client, task_queue=task_queue, workflows=[SagaWorkflow], activities=[sink.record_events, *ACTIVITIES]
    )


@pytest.fixture
async def running(make_worker: Callable[[], Worker]) -> AsyncIterator[Worker]:
    async with make_worker() as w:
        yield w


async def start(
    client: Client, task_queue: str, request: SagaInput, **options: Any
) -> WorkflowHandle[SagaWorkflow, SagaResult]:
    return await client.start_workflow(
        SagaWorkflow.run, request, id=f"saga-{uuid.uuid4().hex}", task_queue=task_queue, **options
    )


async def worker_saw(handle: WorkflowHandle[Any, Any], event_type: HistoryEventType.ValueType) -> None:
    """Wait until a workflow task has completed after the first event of ``event_type``."""
    async with asyncio.timeout(10):
        while True:
            types = [e.event_type for e in (await handle.fetch_history()).events]
            if (
                event_type in types
                and HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in types[types.index(event_type) :]
            ):
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("stop", ["abort", "cancel"])
async def test_a_stop_while_saga_completed_is_written_is_ignored(
    client: Client, task_queue: str, sink: Sink, running: Worker, stop: str
) -> None:
    sink.release.clear()
    # A short task timeout: the worker takes new signals while the slow write goes on.
    handle = await start(client, task_queue, saga("/orders", "/stock"), task_timeout=timedelta(seconds=1))
    await asyncio.wait_for(sink.writing_completed.wait(), 10)
    if stop == "abort":
        await handle.signal(SagaWorkflow.abort, AbortInput("too late"))
        await worker_saw(handle, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    else:
        await handle.cancel()
        await worker_saw(handle, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    sink.release.set()

    result = await handle.result()
    assert (result.state, result.stopped_by, result.compensations) == ("SagaCompleted", None, [])
    note = "too late" if stop == "abort" else None
    assert sink.ignored() == [{"signal": stop, "why": "the saga has finished", "note": note}]
    last = sink.events[-1]
    assert (last.type, last.data["state"], last.data["stopped_by"]) == ("COMPLETE", "SagaCompleted", None)


async def test_two_resolves_in_one_activation_the_first_is_taken_the_second_recorded(
    client: Client, task_queue: str, sink: Sink, make_worker: Callable[[], Worker]
) -> None:
    # Step 2 is refused; step 1's compensation fails once, then works.
    request = saga("/orders", "/refuse", compensations=("/flaky",))
    async with make_worker():
        handle = await start(client, task_queue, request)
        await when_state(handle, "ManualIntervention")
    # With no worker, both signals wait for the same workflow task.
    await handle.signal(SagaWorkflow.resolve, ResolveInput("retry", "restarted orders"))
    await handle.signal(SagaWorkflow.resolve, ResolveInput("mark_resolved", "fixed by hand"))
    async with make_worker():
        result = await handle.result()

    assert [(c.step, c.outcome, c.rounds, c.note) for c in result.compensations] == [
        (1, "compensated", 2, "restarted orders")
    ]
    resolved = [e.data for e in sink.events if e.type == EventType.INTERVENTION_RESOLVED]
    assert [(r["action"], r["note"]) for r in resolved] == [("retry", "restarted orders")]
    assert sink.ignored() == [
        {
            "signal": "resolve",
            "why": "step 1 took an earlier resolve (retry)",
            "note": "fixed by hand",
            "action": "mark_resolved",
        }
    ]
    assert (result.fully_compensated, result.failed_step, result.uncertain_step) == (True, 2, None)


async def test_a_resolve_with_nothing_waiting_is_recorded(
    client: Client, task_queue: str, sink: Sink, running: Worker
) -> None:
    handle = await start(client, task_queue, saga("/orders", "/stock-slow"))
    await when_state(handle, "Step2_InProgress")
    await handle.signal(SagaWorkflow.resolve, ResolveInput("retry", "wrong run"))
    result = await handle.result()
    assert result.state == "SagaCompleted"
    assert sink.ignored() == [
        {"signal": "resolve", "why": "no compensation waits for one", "note": "wrong run", "action": "retry"}
    ]
