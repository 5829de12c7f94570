"""The event vocabulary and the envelope every run's event log uses.

The envelope is ``{"run_id", "seq", "type", "at", "data"}``; ``seq`` counts from 1
with no gaps, and the last event of every run is one of :data:`TERMINAL_EVENTS`.
See ``docs/events.md``. This module is imported by workflow code, so it uses the
standard library only.

No ``from __future__ import annotations`` here: Temporal's converter reads a dataclass's
type hints each time it decodes one, and string annotations make that a compile per field.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crucible.core.runs import RunSnapshot, RunStatus


class EventType:
    """Names of events. Kinds of run add their own lifecycle events."""

    REQUESTED = "REQUESTED"
    SPEC_FETCHED = "SPEC_FETCHED"
    SPEC_INVALID = "SPEC_INVALID"
    SCENARIO_CREATED = "SCENARIO_CREATED"
    EXECUTION_SUCCESS = "EXECUTION_SUCCESS"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    AI_FAILED = "AI_FAILED"
    AI_FALLBACK = "AI_FALLBACK"
    AI_SUCCESS = "AI_SUCCESS"
    QA_EVAL_DONE = "QA_EVAL_DONE"
    INPUT_SCANNED = "INPUT_SCANNED"
    INPUT_INVALID = "INPUT_INVALID"
    RESUMED = "RESUMED"
    CHUNK_FAILED = "CHUNK_FAILED"
    STEP_STARTED = "STEP_STARTED"
    STEP_COMPLETED = "STEP_COMPLETED"
    STEP_FAILED = "STEP_FAILED"
    STATE_CHANGED = "STATE_CHANGED"
    STOP_REQUESTED = "STOP_REQUESTED"
    COMPENSATION_STARTED = "COMPENSATION_STARTED"
    STEP_COMPENSATED = "STEP_COMPENSATED"
    COMPENSATION_SKIPPED = "COMPENSATION_SKIPPED"
    INTERVENTION_RESOLVED = "INTERVENTION_RESOLVED"
    STEP_VERIFIED = "STEP_VERIFIED"
    SIGNAL_IGNORED = "SIGNAL_IGNORED"
    SUBSCRIBED = "SUBSCRIBED"
    TRIGGERED = "TRIGGERED"
    FAULT_INJECTED = "FAULT_INJECTED"
    FAULT_ROLLED_BACK = "FAULT_ROLLED_BACK"
    EVENT_OBSERVED = "EVENT_OBSERVED"
    ASSERTION_PASSED = "ASSERTION_PASSED"
    ASSERTION_FAILED = "ASSERTION_FAILED"
    PREFLIGHT_CHECKED = "PREFLIGHT_CHECKED"
    SLO_MEASURED = "SLO_MEASURED"
    PROGRESS = "PROGRESS"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


#: Every run's log ends with exactly one of these; each closes the run with its status.
CLOSING_STATUS: dict[str, RunStatus] = {
    EventType.COMPLETE: RunStatus.COMPLETED,
    EventType.FAILED: RunStatus.FAILED,
    EventType.CANCELLED: RunStatus.CANCELLED,
}
TERMINAL_EVENTS: frozenset[str] = frozenset(CLOSING_STATUS)


def format_time(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the one timestamp format of events everywhere."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RunEvent:
    """One entry of a run's event log: the envelope."""

    run_id: str
    seq: int
    type: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    def envelope(self) -> dict[str, Any]:
        """The JSON-ready envelope, as the API, SSE and Kafka carry it."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "at": format_time(self.at),
            "data": self.data,
        }


@dataclass
class RecordEventsInput:
    """A batch of a run's events, with the run's row as it stands after them.

    ``fence`` orders attempts: the workflow's history length when it wrote the batch.
    """

    run: RunSnapshot
    events: list[RunEvent]
    fence: int = 0


@dataclass
class RecordEventsResult:
    """``written``: events new to (or replaced in) the store; ``abandoned``: the batch came
    from an attempt that a later one has overtaken, so nothing was written."""

    written: int
    abandoned: bool = False
