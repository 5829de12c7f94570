"""Reads and writes of runs and their event logs in PostgreSQL, the system of record."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from crucible.core.db import session_factory
from crucible.core.errors import CrucibleError
from crucible.core.events import (
    CLOSING_STATUS,
    TERMINAL_EVENTS,
    EventType,
    RecordEventsInput,
    RecordEventsResult,
    RunEvent,
)
from crucible.core.runs import RunStatus
from crucible.core.tables import Run, RunEventRow

#: The terminal event that ends a log with a given status (any other ending is FAILED).
_CLOSING_EVENT = {status: event_type for event_type, status in CLOSING_STATUS.items()}


#: The fence of a log closed by Crucible after its workflow ended: no write can follow it.
CLOSED_FENCE = 2**62

# The hot path's statements are Core statements built once, so SQLAlchemy compiles
# them once; the ORM would recompile a bulk insert for every batch.
_EVENTS: Table = RunEventRow.__table__  # type: ignore[attr-defined]
_RUNS: Table = Run.__table__  # type: ignore[attr-defined]

_UPDATABLE = ("status", "state", "verdict", "summary", "updated_at", "closed_at", "last_seq", "fence")
_run = insert(_RUNS)
#: A run's row only moves forward, by (fence, last_seq); the row lock it takes orders
#: the writers of one run. No row returned means the batch is from an abandoned attempt.
_UPSERT_RUN = _run.on_conflict_do_update(
    index_elements=["run_id"],
    set_={name: _run.excluded[name] for name in _UPDATABLE},
    where=tuple_(_RUNS.c.fence, _RUNS.c.last_seq) <= tuple_(_run.excluded.fence, _run.excluded.last_seq),
).returning(_RUNS.c.run_id)
_event = insert(_EVENTS)
#: The same seq from the same attempt changes nothing; from a later attempt it replaces
#: what an abandoned attempt wrote.
_UPSERT_EVENTS = _event.on_conflict_do_update(
    index_elements=["run_id", "seq"],
    set_={name: _event.excluded[name] for name in ("type", "at", "data", "fence")},
    where=_EVENTS.c.fence < _event.excluded.fence,
).returning(_EVENTS.c.seq)
#: Events past this batch that only an abandoned attempt wrote.
_DROP_ABANDONED = _EVENTS.delete().where(
    _EVENTS.c.run_id == bindparam("run_id"),
    _EVENTS.c.seq > bindparam("after"),
    _EVENTS.c.fence < bindparam("fence"),
)
_PAGE = (
    select(_EVENTS.c.seq, _EVENTS.c.type, _EVENTS.c.at, _EVENTS.c.data)
    .where(_EVENTS.c.run_id == bindparam("run_id"), _EVENTS.c.seq > bindparam("after"))
    .order_by(_EVENTS.c.seq)
    .limit(bindparam("limit"))
)


class InvalidCursorError(CrucibleError):
    """A list cursor that this store did not hand out."""


@dataclass(frozen=True)
class RunPage:
    items: list[Run]
    next_cursor: str | None


#: A list position: the last row's creation time (microseconds since the epoch) and id. Any
#: string of this shape is a position, so a cursor is never "not one the API returned".
CURSOR_PATTERN = r"^[0-9]{1,16}\.[A-Za-z0-9._:-]{1,200}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(created_at: datetime, row_id: str) -> str:
    return f"{(created_at - _EPOCH) // _MICROSECOND}.{row_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not _CURSOR.match(cursor):
        raise InvalidCursorError("a cursor is the next_cursor of a page of this list")
    micros, row_id = cursor.split(".", 1)
    return _EPOCH + int(micros) * _MICROSECOND, row_id


class RunStore:
    """Runs and events in PostgreSQL.

    Writes are idempotent: an event is keyed on ``(run_id, seq)``, and a run's row only
    moves forward. Each batch carries a fence, the workflow's history length when it was
    written, so a batch from a workflow task that Temporal later threw away (its run then
    took another path) is replaced by the path the run really took.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def record(self, batch: RecordEventsInput) -> RecordEventsResult:
        """Store a batch of events and the run's row, in one transaction.

        A retried batch changes nothing. A batch with a higher fence (a later attempt of
        the workflow task) replaces what a lower one wrote at the same seqs and drops the
        lower one's events past them; a batch with a lower fence than the run's row is
        from an abandoned attempt and is ignored.
        """
        if not batch.events:
            raise ValueError("a batch carries at least one event")
        run = batch.run
        now = datetime.now(UTC)
        last_seq = max(event.seq for event in batch.events)
        events = [
            {
                "run_id": e.run_id,
                "seq": e.seq,
                "type": e.type,
                "at": e.at,
                "data": e.data,
                "fence": batch.fence,
            }
            for e in batch.events
        ]
        row = {
            "run_id": run.run_id,
            "kind": run.kind,
            "org_id": run.org_id,
            "team_id": run.team_id,
            "status": run.status.value,
            "state": run.state,
            "verdict": run.verdict,
            "summary": run.summary,
            "created_at": run.created_at or now,
            "updated_at": now,
            "closed_at": run.closed_at,
            "last_seq": last_seq,
            "fence": batch.fence,
        }
        async with self.engine.begin() as conn:
            if (await conn.execute(_UPSERT_RUN, row)).first() is None:
                return RecordEventsResult(written=0, abandoned=True)
            written = len((await conn.execute(_UPSERT_EVENTS, events)).all())
            await conn.execute(
                _DROP_ABANDONED, {"run_id": run.run_id, "after": last_seq, "fence": batch.fence}
            )
        return RecordEventsResult(written=written)

    async def get_run(self, run_id: str) -> Run | None:
        async with self._sessions() as session:
            return await session.get(Run, run_id)

    async def list_runs(
        self,
        *,
        team_ids: list[str] | None = None,
        kind: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        query = select(Run)
        if team_ids is not None:  # None: every team's (the CLI's and the operators' view)
            query = query.where(col(Run.team_id).in_(team_ids))
        if kind is not None:
            query = query.where(col(Run.kind) == kind)
        if status is not None:
            query = query.where(col(Run.status) == status.value)
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            query = query.where(
                tuple_(col(Run.created_at), col(Run.run_id)) < tuple_(literal(created_at), literal(run_id))
            )
        query = query.order_by(col(Run.created_at).desc(), col(Run.run_id).desc()).limit(limit + 1)
        async with self._sessions() as session:
            rows = list((await session.execute(query)).scalars().all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].run_id) if more else None
        return RunPage(items=rows, next_cursor=next_cursor)

    async def list_events(self, run_id: str, *, after: int = 0, limit: int = 100) -> list[RunEvent]:
        """Events with seq greater than ``after``, in order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(_PAGE, {"run_id": run_id, "after": after, "limit": limit})
            return [RunEvent(run_id=run_id, seq=r.seq, type=r.type, at=r.at, data=r.data) for r in rows]

    async def close_run(self, run: Run, *, status: RunStatus, data: dict[str, Any]) -> RunEvent | None:
        """End the log of a run whose workflow closed without writing its terminal event.

        That happens when a workflow is terminated or times out (perhaps before it wrote
        anything: then ``run``, as Temporal describes it, becomes its row). The workflow
        can no longer write, so this is the log's last writer; the row's fence shuts out
        any late write of an abandoned attempt. Returns the event appended, or None when
        the log already had its terminal event.
        """
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(_RUNS).values(run.model_dump()).on_conflict_do_nothing(index_elements=["run_id"])
            )
            await conn.execute(select(_RUNS.c.run_id).where(_RUNS.c.run_id == run.run_id).with_for_update())
            log = (
                await conn.execute(
                    select(
                        func.coalesce(func.max(_EVENTS.c.seq), 0),
                        func.count().filter(_EVENTS.c.type.in_(TERMINAL_EVENTS)),
                    ).where(_EVENTS.c.run_id == run.run_id)
                )
            ).one()
            last_seq, terminals = int(log[0]), int(log[1])
            event = None
            if not terminals:
                event_type = _CLOSING_EVENT.get(status, EventType.FAILED)
                event = RunEvent(run_id=run.run_id, seq=last_seq + 1, type=event_type, at=now, data=data)
                await conn.execute(
                    insert(_EVENTS).values(
                        run_id=run.run_id,
                        seq=event.seq,
                        type=event.type,
                        at=now,
                        data=data,
                        fence=CLOSED_FENCE,
                    )
                )
                last_seq = event.seq
            await conn.execute(
                _RUNS.update()
                .where(_RUNS.c.run_id == run.run_id)
                .values(
                    status=status.value,
                    closed_at=func.coalesce(_RUNS.c.closed_at, now),
                    updated_at=now,
                    last_seq=last_seq,
                    fence=CLOSED_FENCE,
                )
            )
        return event


async def fetch_all_events(store: RunStore, run_id: str) -> Sequence[RunEvent]:
    """Every event of a run, in order (for reports and tests)."""
    events: list[RunEvent] = []
    while True:
        page = await store.list_events(run_id, after=events[-1].seq if events else 0, limit=1000)
        events.extend(page)
        if len(page) < 1000:
            return events
