"""Retention: deleting closed runs, and everything stored for them, from PostgreSQL, and
the chunk outputs batch jobs left behind on disk.

Runs go in batches, each in its own short transaction, so a large prune never holds
its locks for long; a retried activity carries on where the last one stopped, since
what was deleted stays deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from datetime import datetime
from pathlib import Path

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from crucible.activities.heartbeats import heartbeating
from crucible.core.chaos.store import prune_chaos_rows
from crucible.core.qa.store import HEADERS_SECRET, RESULTS, RUNS, drop_unreferenced_secrets
from crucible.core.retention import PruneRunsInput, PruneRunsResult
from crucible.core.runs import RunStatus
from crucible.core.tables import Run, RunEventRow

_RUN_ROWS: Table = Run.__table__  # type: ignore[attr-defined]
_EVENTS: Table = RunEventRow.__table__  # type: ignore[attr-defined]


class RetentionActivities:
    def __init__(self, engine: AsyncEngine, *, batch_work_dir: Path | None = None) -> None:
        self.engine = engine
        self.batch_work_dir = batch_work_dir

    @activity.defn
    async def prune_runs(self, request: PruneRunsInput) -> PruneRunsResult:
        """Delete runs that closed before ``closed_before`` with their events, QA rows and secrets.

        Running runs are never touched, however old. Returns how many rows went, per table.
        """
        total = PruneRunsResult()
        with heartbeating():
            while True:
                async with self.engine.begin() as conn:
                    pruned = await _prune_batch(conn, request)
                total.add(pruned)
                if pruned.runs < request.batch_size:
                    break
        if self.batch_work_dir is not None:
            total.batch_folders = await asyncio.to_thread(
                prune_job_folders, self.batch_work_dir, request.closed_before
            )
        if total.runs or total.batch_folders:
            activity.logger.info(
                "pruned %d runs closed before %s: %s", total.runs, request.closed_before, total
            )
        return total


def prune_job_folders(work_dir: Path, idle_since: datetime) -> int:
    """Remove batch job folders nothing has written to since ``idle_since``; how many went.

    A job that completes removes its own folder; these are the chunk outputs of jobs that
    failed or were cancelled and were never resumed. A running job writes a part file every
    chunk, so its folder is never this idle.
    """
    if not work_dir.is_dir():
        return 0
    cutoff = idle_since.timestamp()
    removed = 0
    for folder in work_dir.iterdir():
        if not folder.is_dir():
            continue
        if _last_written(folder) < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _last_written(folder: Path) -> float:
    """When anything in ``folder`` was last written; a running job renames files meanwhile."""
    newest = 0.0
    for path in (folder, *folder.rglob("*")):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, path.stat().st_mtime)
    return newest


async def _prune_batch(conn: AsyncConnection, request: PruneRunsInput) -> PruneRunsResult:
    doomed = (
        select(_RUN_ROWS.c.run_id)
        .where(_RUN_ROWS.c.status != RunStatus.RUNNING.value, _RUN_ROWS.c.closed_at < request.closed_before)
        .order_by(_RUN_ROWS.c.closed_at)
        .limit(request.batch_size)
        .with_for_update(skip_locked=True)
    )
    run_ids = list((await conn.execute(doomed)).scalars())
    if not run_ids:
        return PruneRunsResult()
    secrets = (
        await conn.execute(
            select(HEADERS_SECRET).where(RUNS.c.run_id.in_(run_ids), HEADERS_SECRET.is_not(None))
        )
    ).scalars()
    secret_ids = sorted(set(secrets))
    pruned = PruneRunsResult(
        run_events=(await conn.execute(_EVENTS.delete().where(_EVENTS.c.run_id.in_(run_ids)))).rowcount,
        qa_results=(await conn.execute(RESULTS.delete().where(RESULTS.c.run_id.in_(run_ids)))).rowcount,
        qa_runs=(await conn.execute(RUNS.delete().where(RUNS.c.run_id.in_(run_ids)))).rowcount,
        chaos_rows=await prune_chaos_rows(conn, run_ids),
    )
    # A secret that a run shares with a schedule's stored request (or another run) stays.
    if secret_ids:
        pruned.secrets = (await conn.execute(drop_unreferenced_secrets(secret_ids))).rowcount
    pruned.runs = (await conn.execute(_RUN_ROWS.delete().where(_RUN_ROWS.c.run_id.in_(run_ids)))).rowcount
    return pruned
