"""Team quotas: how many runs a team may have going at once, and start in a day.

Each run the API starts is admitted first: in one transaction, holding a lock on the team,
its running runs and the runs it started in the last 24 hours are counted, and the run is
recorded as admitted. The transaction commits once Temporal has the run, so a start that
fails leaves no admission, and two requests at once cannot both take the last place.

A Temporal Schedule starts its runs itself: each is admitted the same way by its first
activity (:mod:`crucible.workflows.admission`), once, and fails there if it is over a quota.

A run counts as running from its admission until its row says it has ended. A team's
limits are its ``team_quotas`` row (where a NULL is "no limit"); a team without one has
the server's defaults (``CRUCIBLE_QUOTA_CONCURRENT_RUNS``, ``CRUCIBLE_QUOTA_RUNS_PER_DAY``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crucible.core.config import Settings
from crucible.core.errors import QuotaExceededError
from crucible.core.runs import RunStatus
from crucible.core.tables import RunAdmissionRow, TeamQuotaRow

DAY = timedelta(days=1)
#: How long a client over the concurrent-runs quota is told to wait before it asks again.
CONCURRENT_RETRY_S = 30
#: Admissions older than this stop counting unless their run is still going (and are deleted).
STALE_AFTER = timedelta(days=7)

ADMISSIONS = RunAdmissionRow.__table__  # type: ignore[attr-defined]
QUOTAS = TeamQuotaRow.__table__  # type: ignore[attr-defined]

_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('crucible.quota:' || :team_id))")
_LIMITS = text("SELECT max_concurrent_runs, max_runs_per_day FROM team_quotas WHERE team_id = :team_id")
_RUNNING = text(
    """
    SELECT count(*) FROM run_admissions a LEFT JOIN runs r ON r.run_id = a.run_id
    WHERE a.team_id = :team_id
      AND (r.status = :running OR (r.run_id IS NULL AND a.admitted_at > :stale))
    """
)
_PRUNE = text(
    """
    DELETE FROM run_admissions a WHERE a.team_id = :team_id AND a.admitted_at < :stale
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = a.run_id AND r.status = :running)
    """
)
_ADMITTED = text("SELECT 1 FROM run_admissions WHERE run_id = :run_id")
_TODAY = text(
    "SELECT count(*), min(admitted_at) FROM run_admissions WHERE team_id = :team_id AND admitted_at > :since"
)


@dataclass(frozen=True)
class Limits:
    """A team's quotas; None is no limit."""

    concurrent_runs: int | None
    runs_per_day: int | None


class QuotaStore:
    def __init__(self, engine: AsyncEngine, defaults: Limits) -> None:
        self.engine = engine
        self.defaults = defaults

    @classmethod
    def configured(cls, engine: AsyncEngine, settings: Settings) -> QuotaStore:
        """A store whose defaults are the server's settings."""
        return cls(engine, Limits(settings.quota_concurrent_runs, settings.quota_runs_per_day))

    async def set_limits(self, team_id: str, limits: Limits) -> None:
        """Give ``team_id`` its own quotas (None: no limit), in place of the defaults."""
        values = {
            "team_id": team_id,
            "max_concurrent_runs": limits.concurrent_runs,
            "max_runs_per_day": limits.runs_per_day,
            "updated_at": datetime.now(UTC),
        }
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(QUOTAS).values(**values).on_conflict_do_update(index_elements=["team_id"], set_=values)
            )

    async def limits_of(self, team_id: str) -> Limits:
        """The team's quotas: its own, or the defaults."""
        async with self.engine.connect() as conn:
            return await self._limits(conn, team_id)

    async def _limits(self, conn: AsyncConnection, team_id: str) -> Limits:
        row = (await conn.execute(_LIMITS, {"team_id": team_id})).first()
        return Limits(row[0], row[1]) if row is not None else self.defaults

    @asynccontextmanager
    async def admit(self, run_id: str, team_id: str) -> AsyncIterator[None]:
        """Admit a run of ``team_id``, for the block that starts it.

        Raises:
            QuotaExceededError: the team is at one of its quotas; says when to try again.
        """
        async with self.engine.begin() as conn:
            await self._admit(conn, run_id, team_id)
            yield

    async def admit_started(self, run_id: str, team_id: str) -> None:
        """Admit a run that has started already (a schedule's), unless it was admitted before.

        Raises:
            QuotaExceededError: the team is at one of its quotas; says when to try again.
        """
        async with self.engine.begin() as conn:
            await self._admit(conn, run_id, team_id, once=True)

    async def _admit(self, conn: AsyncConnection, run_id: str, team_id: str, *, once: bool = False) -> None:
        now = datetime.now(UTC)
        await conn.execute(_LOCK, {"team_id": team_id})
        if once and (await conn.execute(_ADMITTED, {"run_id": run_id})).first() is not None:
            return
        limits = await self._limits(conn, team_id)
        if limits.concurrent_runs is not None:
            running = (
                await conn.execute(
                    _RUNNING,
                    {"team_id": team_id, "running": RunStatus.RUNNING.value, "stale": now - STALE_AFTER},
                )
            ).scalar_one()
            if running >= limits.concurrent_runs:
                raise QuotaExceededError(
                    f"team {team_id!r} has {running} runs going, its quota of concurrent runs; "
                    "start this one when one of them ends",
                    retry_after_s=CONCURRENT_RETRY_S,
                )
        if limits.runs_per_day is not None:
            started, oldest = (await conn.execute(_TODAY, {"team_id": team_id, "since": now - DAY})).one()
            if started >= limits.runs_per_day:
                wait = (oldest + DAY - now).total_seconds() if oldest is not None else DAY.total_seconds()
                raise QuotaExceededError(
                    f"team {team_id!r} has started {started} runs in the last 24 hours, its daily quota",
                    retry_after_s=max(1, math.ceil(wait)),
                )
        # Admissions older than a week count only while their run goes on.
        await conn.execute(
            _PRUNE, {"team_id": team_id, "stale": now - STALE_AFTER, "running": RunStatus.RUNNING.value}
        )
        # A run id admitted before (a second resume of one job) is refused when it starts.
        await conn.execute(
            insert(ADMISSIONS)
            .values(run_id=run_id, team_id=team_id, admitted_at=now)
            .on_conflict_do_nothing()
        )
