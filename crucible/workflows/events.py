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
    from crucible.core.events import CLOSING_STATUS, EventType, RecordEventsInput, RunEvent
    from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM, RunSnapshot, RunStatus
    from crucible.core.temporal import ORG_KEY, TEAM_KEY

T = TypeVar("T")

#: Writing events retries until PostgreSQL and Kafka take them: a run waits for
#: its system of record rather than losing events.
RECORD_EVENTS_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
RECORD_EVENTS_TIMEOUT = timedelta(seconds=30)


class RunEventLog:
    """Numbers, buffers and writes a run's events, and keeps its row current.

    Events are written by local activities, in batches, each fenced by the workflow's
    history length, so the store keeps the path the run really took even when Temporal
    throws a workflow task away. The terminal event is written by a regular activity,
    recorded in history before the workflow closes: a cancel or signal that arrives while
    a run is closing cannot change how its log ends.
    """

    def __init__(
        self,
        *,
        kind: str,
        org_id: str | None = None,
        team_id: str | None = None,
        next_seq: int = 1,
        created_at: datetime | None = None,
        fence_base: int = 0,
    ) -> None:
        info = workflow.info()
        attributes = info.typed_search_attributes
        self.run = RunSnapshot(
            run_id=info.workflow_id,
            kind=kind,
            org_id=org_id or attributes.get(ORG_KEY) or DEFAULT_ORG,
            team_id=team_id or attributes.get(TEAM_KEY) or DEFAULT_TEAM,
            created_at=created_at or info.start_time,
        )
        self._last_seq = next_seq - 1
        self._fence_base = fence_base
        self._pending: list[RunEvent] = []
        self._lock = asyncio.Lock()

    @property
    def next_seq(self) -> int:
        """The seq the next event gets; :meth:`flush` and carry it across continue-as-new."""
        return self._last_seq + 1

    @property
    def next_fence_base(self) -> int:
        """The fences a run continued as new must start above; carry it with :attr:`next_seq`.

        Fences are history lengths, which start again in a new run: without a base, the new
        run's batches would look older than the last ones of the run it continues.
        """
        return self._fence_base + workflow.info().get_current_history_length()

    @property
    def closed(self) -> bool:
        """Whether the terminal event has been emitted; nothing may follow it."""
        return self.run.status is not RunStatus.RUNNING

    def emit(self, type: str, data: dict[str, Any] | None = None) -> RunEvent:
        """Add an event to the log; it is written by the next :meth:`flush`."""
        if self.closed:
            raise RuntimeError(f"the log of {self.run.run_id} is closed; {type} cannot follow its end")
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

    def _batch(self) -> RecordEventsInput:
        return RecordEventsInput(
            run=self.run,
            events=list(self._pending),
            fence=self._fence_base + workflow.info().get_current_history_length(),
        )

    async def flush(self) -> None:
        """Write every pending event. Batches are written one at a time, in order."""
        async with self._lock:
            if not self._pending:
                return
            batch = self._batch()
            await workflow.execute_local_activity_method(
                EventActivities.record_events,
                batch,
                start_to_close_timeout=RECORD_EVENTS_TIMEOUT,
                retry_policy=RECORD_EVENTS_RETRY,
            )
            del self._pending[: len(batch.events)]

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
        """Write the run's terminal event (``COMPLETE``, ``FAILED`` or ``CANCELLED``).

        It is the last thing a run does. A cancellation that arrives while it is being
        written does not interrupt it: the run is ending already, and ends as written.
        """
        self.emit(type, data)
        self.run.status = CLOSING_STATUS[type]
        self.run.closed_at = workflow.now()
        async with self._lock:
            batch = self._batch()
            write = asyncio.ensure_future(
                workflow.execute_activity_method(
                    EventActivities.record_events,
                    batch,
                    start_to_close_timeout=RECORD_EVENTS_TIMEOUT,
                    retry_policy=RECORD_EVENTS_RETRY,
                )
            )
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write
            self._pending.clear()

    async def guard(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run the workflow's body so that its log always ends with a terminal event.

        Cancellation writes ``CANCELLED``, a failure that fails the workflow writes
        ``FAILED``; both are re-raised so Temporal sees the same outcome. The body
        usually writes ``COMPLETE`` itself with :meth:`close`, as its last step;
        otherwise the guard does when the body returns.
        """
        try:
            result = await body()
        except (asyncio.CancelledError, FailureError) as exc:
            if self.closed:  # the log has its end already; Temporal hears the rest
                raise
            # Temporal reports a cancellation as such even when it surfaces through an
            # activity or child workflow; the log says the same as Temporal will.
            if is_cancelled_exception(exc):
                await self.close(EventType.CANCELLED, {"reason": "cancelled"})
            else:
                await self.close(EventType.FAILED, {"reason": type(exc).__name__, "message": str(exc)})
            raise
        if not self.closed:
            await self.close(EventType.COMPLETE)
        return result
