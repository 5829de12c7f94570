"""The run's event log as a workflow keeps it.

The workflow is the single writer of its log: it numbers events itself and writes
them in batches with a local activity, so a retried write changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from crucible.activities.events import EventActivities
    from crucible.core.events import EventType, RecordEventsInput, RunEvent
    from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM, RunSnapshot, RunStatus

T = TypeVar("T")

#: Writing events retries until PostgreSQL and Kafka take them: a run waits for
#: its system of record rather than losing events.
RECORD_EVENTS_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
RECORD_EVENTS_TIMEOUT = timedelta(seconds=30)

_CLOSING = {
    EventType.COMPLETE: RunStatus.COMPLETED,
    EventType.FAILED: RunStatus.FAILED,
    EventType.CANCELLED: RunStatus.CANCELLED,
}


class RunEventLog:
    """Numbers, buffers and writes a run's events, and keeps its row current."""

    def __init__(
        self,
        *,
        kind: str,
        org_id: str = DEFAULT_ORG,
        team_id: str = DEFAULT_TEAM,
        next_seq: int = 1,
        created_at: datetime | None = None,
    ) -> None:
        info = workflow.info()
        self.run = RunSnapshot(
            run_id=info.workflow_id,
            kind=kind,
            org_id=org_id,
            team_id=team_id,
            created_at=created_at or info.start_time,
        )
        self._last_seq = next_seq - 1
        self._pending: list[RunEvent] = []
        self._lock = asyncio.Lock()

    @property
    def next_seq(self) -> int:
        """The seq the next event gets; carry it across continue-as-new."""
        return self._last_seq + 1

    def emit(self, type: str, data: dict[str, Any] | None = None) -> RunEvent:
        """Add an event to the log; it is written by the next :meth:`flush`."""
        self._last_seq += 1
        event = RunEvent(
            run_id=self.run.run_id,
            seq=self._last_seq,
            type=type,
            at=workflow.now(),
            data=data or {},
        )
        self._pending.append(event)
        return event

    async def flush(self) -> None:
        """Write every pending event. Batches are written one at a time, in order."""
        async with self._lock:
            if not self._pending:
                return
            batch = list(self._pending)
            await workflow.execute_local_activity_method(
                EventActivities.record_events,
                RecordEventsInput(run=self.run, events=batch),
                start_to_close_timeout=RECORD_EVENTS_TIMEOUT,
                retry_policy=RECORD_EVENTS_RETRY,
            )
            del self._pending[: len(batch)]

    async def record(self, type: str, data: dict[str, Any] | None = None) -> RunEvent:
        """Emit one event and write it now."""
        event = self.emit(type, data)
        await self.flush()
        return event

    async def set_state(self, state: str, data: dict[str, Any] | None = None) -> None:
        """Move the run's state machine, recorded as a ``STATE_CHANGED`` event."""
        previous, self.run.state = self.run.state, state
        await self.record(EventType.STATE_CHANGED, {"from": previous, "to": state, **(data or {})})

    async def close(self, type: str, data: dict[str, Any] | None = None) -> None:
        """Write the run's terminal event (``COMPLETE``, ``FAILED`` or ``CANCELLED``)."""
        self.run.status = _CLOSING[type]
        self.run.closed_at = workflow.now()
        await self.record(type, data)

    async def guard(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run the workflow's body so that its log always ends with a terminal event.

        Cancellation writes ``CANCELLED``, a failure that fails the workflow writes
        ``FAILED``; both are re-raised so Temporal sees the same outcome. The body
        writes ``COMPLETE`` itself, with its result.
        """
        try:
            result = await body()
        except (asyncio.CancelledError, FailureError) as exc:
            # Temporal reports a cancellation as such even when it surfaces through an
            # activity or child workflow; the log says the same as Temporal will.
            if is_cancelled_exception(exc):
                await self.close(EventType.CANCELLED, {"reason": "cancelled"})
            else:
                await self.close(EventType.FAILED, {"reason": type(exc).__name__, "message": str(exc)})
            raise
        if self.run.status is RunStatus.RUNNING:
            await self.close(EventType.COMPLETE)
        return result
