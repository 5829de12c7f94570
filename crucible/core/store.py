"""Reads and writes of runs and their event logs in PostgreSQL, the system of record."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from crucible.core.db import session_factory
from crucible.core.events import TERMINAL_EVENTS, EventType, RecordEventsInput, RunEvent
from crucible.core.runs import RunStatus
from crucible.core.tables import Run, RunEventRow

_CLOSING_EVENT = {RunStatus.COMPLETED: EventType.COMPLETE, RunStatus.CANCELLED: EventType.CANCELLED}


# The hot path's statements are Core statements built once, so SQLAlchemy compiles
# them once; the ORM would recompile a bulk insert for every batch.
_EVENTS: Table = RunEventRow.__table__  # type: ignore[attr-defined]
_RUNS: Table = Run.__table__  # type: ignore[attr-defined]
_INSERT_EVENTS = (
    insert(_EVENTS).on_conflict_do_nothing(index_elements=["run_id", "seq"]).returning(_EVENTS.c.seq)
)
_PAGE = (
    select(_EVENTS.c.seq, _EVENTS.c.type, _EVENTS.c.at, _EVENTS.c.data)
    .where(_EVENTS.c.run_id == bindparam("run_id"), _EVENTS.c.seq > bindparam("after"))
    .order_by(_EVENTS.c.seq)
    .limit(bindparam("limit"))
)
_TERMINAL = select(func.min(_EVENTS.c.seq)).where(
    _EVENTS.c.run_id == bindparam("run_id"), _EVENTS.c.type.in_(TERMINAL_EVENTS)
)
_UPDATABLE = ("status", "state", "verdict", "summary", "updated_at", "closed_at", "last_seq")
_upsert = insert(_RUNS)
#: A run's row only moves forward: a late retry of an older batch changes nothing.
_UPSERT_RUN = _upsert.on_conflict_do_update(
    index_elements=["run_id"],
    set_={name: _upsert.excluded[name] for name in _UPDATABLE},
    where=_RUNS.c.last_seq <= _upsert.excluded.last_seq,
)


class InvalidCursorError(ValueError):
    """A list cursor that this store did not hand out."""


@dataclass(frozen=True)
class RunPage:
    items: list[Run]
    next_cursor: str | None


def encode_cursor(created_at: datetime, run_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, run_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(run_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError("cursor is not one this API returned") from exc


class RunStore:
    """Runs and events in PostgreSQL.

    Writes are idempotent: an event is keyed on ``(run_id, seq)``, and a run's row only
    moves forward (a batch never overwrites a row that already reflects later events).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def record(self, batch: RecordEventsInput) -> int:
        """Store a batch of events and the run's row; returns how many events were new."""
        if not batch.events:
            raise ValueError("a batch carries at least one event")
        run = batch.run
        now = datetime.now(UTC)
        last_seq = max(event.seq for event in batch.events)
        events = [
            {"run_id": e.run_id, "seq": e.seq, "type": e.type, "at": e.at, "data": e.data}
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
        }
        async with self.engine.begin() as conn:
            new_events = len((await conn.execute(_INSERT_EVENTS, events)).all())
            await conn.execute(_UPSERT_RUN, row)
        return new_events

    async def get_run(self, run_id: str) -> Run | None:
        async with self._sessions() as session:
            return await session.get(Run, run_id)

    async def list_runs(
        self,
        *,
        kind: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        query = select(Run)
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
        return (await self.event_page(run_id, after=after, limit=limit))[0]

    async def event_page(
        self, run_id: str, *, after: int = 0, limit: int = 100
    ) -> tuple[list[RunEvent], int | None]:
        """Events after ``after``, in order, and the seq of the run's terminal event if any."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(_PAGE, {"run_id": run_id, "after": after, "limit": limit})
            events = [RunEvent(run_id=run_id, seq=r.seq, type=r.type, at=r.at, data=r.data) for r in rows]
            terminal = (await conn.execute(_TERMINAL, {"run_id": run_id})).scalar_one_or_none()
        return events, terminal

    async def terminal_seq(self, run_id: str) -> int | None:
        """The seq of the run's terminal event, if its log has one."""
        async with self.engine.connect() as conn:
            return (await conn.execute(_TERMINAL, {"run_id": run_id})).scalar_one_or_none()

    async def close_run(self, run_id: str, *, status: RunStatus, data: dict[str, Any]) -> RunEvent | None:
        """End the log of a run whose workflow closed without writing its terminal event.

        That happens when a workflow is terminated, times out, or fails outside its own
        handling. The workflow can no longer write, so this is the log's only writer now.
        Returns the event appended, or None when the log already had its terminal event.
        """
        event_type = _CLOSING_EVENT.get(status, EventType.FAILED)
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            run = (
                await session.execute(select(Run).where(col(Run.run_id) == run_id).with_for_update())
            ).scalar_one_or_none()
            if run is None:
                return None
            has_terminal = await session.execute(
                select(col(RunEventRow.seq)).where(
                    col(RunEventRow.run_id) == run_id, col(RunEventRow.type).in_(TERMINAL_EVENTS)
                )
            )
            last = await session.execute(
                select(func.coalesce(func.max(RunEventRow.seq), 0)).where(col(RunEventRow.run_id) == run_id)
            )
            last_seq = int(last.scalar_one())
            event = None
            if has_terminal.first() is None:
                event = RunEvent(run_id=run_id, seq=last_seq + 1, type=event_type, at=now, data=data)
                session.add(RunEventRow(run_id=run_id, seq=event.seq, type=event.type, at=now, data=data))
                last_seq = event.seq
            run.status = status.value
            run.closed_at = run.closed_at or now
            run.updated_at = now
            run.last_seq = last_seq
            session.add(run)
        return event


async def fetch_all_events(store: RunStore, run_id: str) -> Sequence[RunEvent]:
    """Every event of a run, in order (for reports and tests)."""
    events: list[RunEvent] = []
    while True:
        page = await store.list_events(run_id, after=events[-1].seq if events else 0, limit=1000)
        events.extend(page)
        if len(page) < 1000:
            return events
