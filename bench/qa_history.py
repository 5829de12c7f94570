"""A QA run's Temporal history, read back: its size, and where its time went.

Every timestamp is the Temporal server's, on the same machine as the benchmark, so
they line up with the wall clock the benchmark reads around the API call.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

BATCH = "execute_operations"


@dataclass
class ActivitySpan:
    name: str
    scheduled: float  # epoch seconds
    started: float | None = None
    closed: float | None = None
    result: Any = None

    @property
    def seconds(self) -> float:
        return (self.closed or self.scheduled) - self.scheduled


@dataclass
class RunHistory:
    events: int
    bytes: int
    by_type: Counter[str]
    started: float
    closed: float
    activities: list[ActivitySpan] = field(default_factory=list)
    workflow_tasks: int = 0
    #: Sum over workflow tasks of scheduled → started (waiting for the worker) and started → completed.
    workflow_task_wait_s: float = 0.0
    workflow_task_run_s: float = 0.0

    def named(self, name: str) -> list[ActivitySpan]:
        return [a for a in self.activities if a.name == name]


def _seconds(event: HistoryEvent) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


def _decoded(payloads: Any) -> Any:
    try:
        return json.loads(payloads.payloads[0].data)
    except (IndexError, ValueError):
        return None


async def fetch_run_history(client: Client, run_id: str) -> RunHistory:
    history = await client.get_workflow_handle(run_id).fetch_history()
    events = list(history.events)
    by_type: Counter[str] = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)
    run = RunHistory(
        events=len(events),
        bytes=sum(e.ByteSize() for e in events),
        by_type=by_type,
        started=_seconds(events[0]),
        closed=_seconds(events[-1]),
    )
    spans: dict[int, ActivitySpan] = {}
    task_scheduled: dict[int, float] = {}
    task_started: dict[int, float] = {}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            spans[event.event_id] = ActivitySpan(name, _seconds(event))
            run.activities.append(spans[event.event_id])
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            spans[event.activity_task_started_event_attributes.scheduled_event_id].started = _seconds(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            span = spans[attributes.scheduled_event_id]
            span.closed, span.result = _seconds(event), _decoded(attributes.result)
        elif kind in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        ):
            ended = (
                event.activity_task_failed_event_attributes
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                else event.activity_task_timed_out_event_attributes
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT
                else event.activity_task_canceled_event_attributes
            )
            spans[ended.scheduled_event_id].closed = _seconds(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            task_scheduled[event.event_id] = _seconds(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            attributes_id = event.workflow_task_started_event_attributes.scheduled_event_id
            task_started[event.event_id] = _seconds(event)
            run.workflow_task_wait_s += _seconds(event) - task_scheduled.get(attributes_id, _seconds(event))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            run.workflow_tasks += 1
            started_id = event.workflow_task_completed_event_attributes.started_event_id
            run.workflow_task_run_s += _seconds(event) - task_started.get(started_id, _seconds(event))
    return run


@dataclass
class Timeline:
    """Where one Crucible run's wall time went, in seconds, in order."""

    phases: list[tuple[str, float]]
    batches: int
    batch_seconds: list[float]
    batch_scenarios: list[int]
    #: For each batch after a lane's first: its lane's last batch closed → it was scheduled.
    lane_gaps: list[float]


def timeline(run: RunHistory, *, posted: float, seen: float) -> Timeline:
    """``posted``: when the benchmark sent the POST; ``seen``: when it saw the run end (epoch s)."""
    batches = sorted(run.named(BATCH), key=lambda a: a.scheduled)
    fetch = run.named("fetch_spec")
    evaluate = run.named("evaluate_qa")
    phases: list[tuple[str, float]] = [
        ("POST → workflow started (the API stores the request, starts the workflow)", run.started - posted)
    ]
    if fetch and batches and evaluate:
        spec, judge = fetch[0], evaluate[0]
        spec_done = spec.closed or spec.scheduled
        last_batch = max(b.closed or b.scheduled for b in batches)
        phases += [
            ("workflow started → fetch_spec scheduled (REQUESTED event)", spec.scheduled - run.started),
            ("fetch_spec (download, parse and store the spec)", spec.seconds),
            (
                "fetch_spec done → first batch scheduled (SPEC_FETCHED event)",
                batches[0].scheduled - spec_done,
            ),
            ("first batch scheduled → last batch done (every scenario)", last_batch - batches[0].scheduled),
            ("last batch done → evaluate_qa scheduled (AI_SUCCESS event)", judge.scheduled - last_batch),
            ("evaluate_qa (read every result, judge, store)", judge.seconds),
            (
                "evaluate_qa done → workflow closed (QA_EVAL_DONE and COMPLETE events)",
                run.closed - (judge.closed or judge.scheduled),
            ),
        ]
    phases.append(("workflow closed → the benchmark saw it", seen - run.closed))
    lanes: list[float] = []  # when each lane's running batch closes
    gaps: list[float] = []
    for batch in batches:
        free = [end for end in lanes if end <= batch.scheduled]
        if free:
            last = max(free)
            gaps.append(batch.scheduled - last)
            lanes.remove(last)
        lanes.append(batch.closed or batch.scheduled)
    scenarios = [sum(o.get("scenarios", 0) for o in (b.result or {}).get("outcomes", [])) for b in batches]
    return Timeline(phases, len(batches), [b.seconds for b in batches], scenarios, gaps)
