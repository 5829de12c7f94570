"""The workflow side of the event log, with the event sink replaced by name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Worker

from crucible.core.events import RecordEventsInput, RecordEventsResult, RunEvent
from crucible.core.runs import RunStatus
from tests.support.probe import ProbeInput, ProbeWorkflow, ProceedInput, hold
from tests.support.runs import start_probe


class Sink:
    """Stands in for the real event sink; optionally fails the first try of each batch."""

    def __init__(self, *, flaky: bool = False, slow_end_s: float = 0) -> None:
        self.batches: list[RecordEventsInput] = []
        self.flaky = flaky
        self.slow_end_s = slow_end_s
        self.writing_end = asyncio.Event()

    @activity.defn(name="record_events")
    async def record_events(self, batch: RecordEventsInput) -> RecordEventsResult:
        if self.flaky and activity.info().attempt == 1:
            raise RuntimeError("the database went away")
        if batch.events[-1].is_terminal:
            self.writing_end.set()
            await asyncio.sleep(self.slow_end_s)
        self.batches.append(batch)
        return RecordEventsResult(written=len(batch.events))

    @property
    def events(self) -> list[RunEvent]:
        by_seq = {e.seq: e for b in self.batches for e in b.events}
        return [by_seq[s] for s in sorted(by_seq)]


@pytest.fixture
async def sink(client: Client, task_queue: str) -> AsyncIterator[Sink]:
    sink = Sink()
    async with Worker(
        client, task_queue=task_queue, workflows=[ProbeWorkflow], activities=[sink.record_events, hold]
    ):
        yield sink


async def test_events_are_numbered_from_one_without_gaps(client: Client, task_queue: str, sink: Sink) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=4))
    assert await handle.result() == 4

    types = [e.type for e in sink.events]
    assert types == ["REQUESTED", "STEP", "STEP", "STEP", "STEP", "COMPLETE"]
    assert [e.seq for e in sink.events] == [1, 2, 3, 4, 5, 6]
    assert all(e.run_id == handle.id for e in sink.events)
    final = sink.batches[-1].run
    assert (final.status, final.verdict, final.kind) == (RunStatus.COMPLETED, "PASSED", "probe")
    assert final.closed_at is not None


async def test_emitted_events_are_written_in_one_batch(client: Client, task_queue: str, sink: Sink) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=50))
    await handle.result()
    assert len(sink.events) == 52
    assert len(sink.batches) == 3  # REQUESTED, the 50 steps together, COMPLETE


async def test_a_failure_ends_the_log_with_failed(client: Client, task_queue: str, sink: Sink) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, fail_with="target unreachable"))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)

    last = sink.events[-1]
    assert last.type == "FAILED"
    assert "target unreachable" in last.data["message"]
    assert sink.batches[-1].run.status is RunStatus.FAILED


async def test_cancelling_ends_the_log_with_cancelled(client: Client, task_queue: str, sink: Sink) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    async with asyncio.timeout(10):
        while not any(e.data.get("to") == "Waiting" for e in sink.events):
            await asyncio.sleep(0.05)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)

    assert [e.type for e in sink.events][-1] == "CANCELLED"
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))
    assert sink.batches[-1].run.status is RunStatus.CANCELLED


async def test_cancelling_during_an_activity_ends_the_log_with_cancelled(
    client: Client, task_queue: str, sink: Sink
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, hold_s=300))
    async with asyncio.timeout(10):
        while not any(e.data.get("to") == "Holding" for e in sink.events):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the activity is running now
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)  # Temporal: cancelled, not failed
    assert sink.events[-1].type == "CANCELLED"
    assert sink.batches[-1].run.status is RunStatus.CANCELLED


async def test_a_cancel_while_the_end_is_written_does_not_change_the_end(
    client: Client, task_queue: str
) -> None:
    sink = Sink(slow_end_s=1.0)
    async with Worker(
        client, task_queue=task_queue, workflows=[ProbeWorkflow], activities=[sink.record_events]
    ):
        handle = await start_probe(client, task_queue, ProbeInput(steps=1))
        await asyncio.wait_for(sink.writing_end.wait(), 10)
        await handle.cancel()
        assert await handle.result() == 1  # it completed, as its log says

    assert [e.type for e in sink.events] == ["REQUESTED", "STEP", "COMPLETE"]
    assert sum(e.is_terminal for b in sink.batches for e in b.events) == 1
    description = await handle.describe()
    assert description.status is not None and description.status.name == "COMPLETED"


async def test_a_failed_write_is_retried_without_gaps(client: Client, task_queue: str) -> None:
    sink = Sink(flaky=True)
    async with Worker(
        client, task_queue=task_queue, workflows=[ProbeWorkflow], activities=[sink.record_events]
    ):
        handle = await start_probe(client, task_queue, ProbeInput(steps=3, wait_for_proceed=True))
        async with asyncio.timeout(10):
            while not any(e.type == "STATE_CHANGED" for e in sink.events):
                await asyncio.sleep(0.05)
        await handle.signal(ProbeWorkflow.proceed, ProceedInput(note="go"))
        await handle.result()

    assert [e.type for e in sink.events] == [
        "REQUESTED",
        "STEP",
        "STEP",
        "STEP",
        "STATE_CHANGED",
        "PROCEEDED",
        "COMPLETE",
    ]
    assert [e.seq for e in sink.events] == list(range(1, 8))
    assert len(sink.batches) == 5  # every batch was written exactly once, after its failed first try
