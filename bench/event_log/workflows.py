"""The two workflows the write path compares.

Both emit the same events in the same three batches (``REQUESTED``, the steps,
``COMPLETE``) with the same kinds of activity: two local activities, then a regular one
for the terminal batch, as :class:`RunEventLog` does. The subject writes them through
the real sink; the baseline hands them to :func:`discard_events`. What is left between
the two is the cost of the sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.event_log.activities import discard_events
    from crucible.core.events import EventType, RecordEventsInput, RunEvent
    from crucible.core.runs import RunSnapshot
    from crucible.workflows.events import RECORD_EVENTS_RETRY, RECORD_EVENTS_TIMEOUT, RunEventLog

#: Run ids are ``bench-<hex>``: valid run ids that no real kind of run uses.
BENCH_KIND = "bench"
#: Batches per workflow, in both workflows: two local activities and one regular one.
BATCHES_PER_RUN = 3

PlannedEvent = tuple[str, dict[str, Any]]


@dataclass
class EventLogBenchInput:
    steps: int = 20
    data_bytes: int = 64


def events_per_run(input: EventLogBenchInput) -> int:
    return input.steps + 2


def plan_events(input: EventLogBenchInput) -> tuple[PlannedEvent, list[PlannedEvent], PlannedEvent]:
    """The events of one run: ``REQUESTED``, ``steps`` times ``STEP``, ``COMPLETE``."""
    filler = "x" * input.data_bytes
    steps = [("STEP", {"n": n, "detail": filler}) for n in range(1, input.steps + 1)]
    return (EventType.REQUESTED, {"steps": input.steps}), steps, (EventType.COMPLETE, {"steps": input.steps})


@workflow.defn
class EventLogBenchWorkflow:
    """The subject: the event log as every Crucible workflow keeps it."""

    @workflow.run
    async def run(self, input: EventLogBenchInput) -> int:
        log = RunEventLog(kind=BENCH_KIND)
        requested, steps, complete = plan_events(input)
        await log.record(*requested)
        for type_, data in steps:
            log.emit(type_, data)
        await log.flush()
        await log.close(*complete)
        return log.next_seq - 1


@workflow.defn
class DiscardEventsBenchWorkflow:
    """The baseline: the same batches, as the same kinds of activity, written nowhere."""

    @workflow.run
    async def run(self, input: EventLogBenchInput) -> int:
        info = workflow.info()
        run = RunSnapshot(run_id=info.workflow_id, kind=BENCH_KIND, created_at=info.start_time)
        requested, steps, complete = plan_events(input)
        seq = 0
        for planned in ([requested], steps, [complete]):
            events = []
            for type_, data in planned:
                seq += 1
                events.append(RunEvent(run_id=run.run_id, seq=seq, type=type_, at=workflow.now(), data=data))
            batch = RecordEventsInput(run=run, events=events, fence=info.get_current_history_length())
            run_as = workflow.execute_activity if planned[-1] is complete else workflow.execute_local_activity
            await run_as(
                discard_events,
                batch,
                start_to_close_timeout=RECORD_EVENTS_TIMEOUT,
                retry_policy=RECORD_EVENTS_RETRY,
            )
        return seq
