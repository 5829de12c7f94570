"""The retention workflow deletes exactly the runs that closed long ago, and what is stored for them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.worker import Worker

from crucible.activities.retention import RetentionActivities
from crucible.core.config import Settings
from crucible.core.events import EventType, RecordEventsInput, RunEvent
from crucible.core.qa.store import RESULTS, QaStore, StoredResult
from crucible.core.retention import PruneRunsResult
from crucible.core.runs import RunSnapshot, RunStatus, new_run_id
from crucible.core.secrets import SecretStore, SecretsUnavailableError, secret_box
from crucible.core.store import RunStore
from crucible.workflows.retention import RetentionInput, RetentionWorkflow

NOW = datetime.now(UTC)


@pytest.fixture
async def retention_worker(client: Client, store: RunStore, task_queue: str) -> AsyncIterator[Worker]:
    activities = RetentionActivities(store.engine)
    async with Worker(
        client, task_queue=task_queue, workflows=[RetentionWorkflow], activities=[activities.prune_runs]
    ) as worker:
        yield worker


async def prune(client: Client, worker: Worker, days: int, batch_size: int = 1000) -> PruneRunsResult:
    result: PruneRunsResult = await client.execute_workflow(
        RetentionWorkflow.run,
        RetentionInput(older_than_days=days, batch_size=batch_size),
        id=f"retention-test-{uuid.uuid4().hex}",
        task_queue=worker.task_queue,
    )
    return result


async def add_run(
    store: RunStore,
    qa: QaStore,
    *,
    created_days_ago: float,
    closed_days_ago: float | None,
    headers_secret: str | None = None,
) -> str:
    """A QA run with three events, its request row and one result; closed that long ago, or running."""
    run_id = new_run_id("qa")
    created = NOW - timedelta(days=created_days_ago)
    closed = None if closed_days_ago is None else NOW - timedelta(days=closed_days_ago)
    status = RunStatus.RUNNING if closed is None else RunStatus.COMPLETED
    types = [
        EventType.REQUESTED,
        EventType.SPEC_FETCHED,
        EventType.COMPLETE if closed else EventType.PROGRESS,
    ]
    await store.record(
        RecordEventsInput(
            run=RunSnapshot(run_id=run_id, kind="qa", status=status, created_at=created, closed_at=closed),
            events=[
                RunEvent(run_id=run_id, seq=i, type=t, at=created, data={}) for i, t in enumerate(types, 1)
            ],
        )
    )
    await qa.create(run_id, request={"base_url": "http://x", "headers_secret": headers_secret}, spec=None)
    await qa.save_results(run_id, [StoredResult("GET /x", 0, {"path": "/x"}, {"status": 200}, True)])
    return run_id


async def stored(store: RunStore, qa: QaStore, run_id: str) -> dict[str, Any]:
    async with store.engine.connect() as conn:
        results = (await conn.execute(select(func.count()).where(RESULTS.c.run_id == run_id))).scalar()
    return {
        "run": await store.get_run(run_id) is not None,
        "events": len(await store.list_events(run_id)),
        "qa": await qa.get(run_id) is not None,
        "results": results,
    }


async def opens(secrets: SecretStore, secret_id: str) -> bool:
    try:
        await secrets.get(secret_id)
    except SecretsUnavailableError:
        return False
    return True


async def test_old_closed_runs_go_with_their_events_rows_and_secrets(
    client: Client, store: RunStore, settings: Settings, retention_worker: Worker
) -> None:
    qa = QaStore(store.engine)
    secrets = SecretStore(store.engine, secret_box(settings))
    own_secret = await secrets.put({"X-Key": "one run's"}, prefix="headers")
    shared_secret = await secrets.put({"X-Key": "a schedule's"}, prefix="headers")
    template = f"template-qa-{uuid.uuid4().hex}"
    await qa.create(template, request={"headers_secret": shared_secret}, spec=None)

    old = [
        await add_run(store, qa, created_days_ago=41, closed_days_ago=40, headers_secret=own_secret),
        await add_run(store, qa, created_days_ago=32, closed_days_ago=31, headers_secret=shared_secret),
        await add_run(store, qa, created_days_ago=91, closed_days_ago=90),
    ]
    kept = [
        await add_run(store, qa, created_days_ago=60, closed_days_ago=29),  # not closed long enough ago
        await add_run(store, qa, created_days_ago=100, closed_days_ago=None),  # old, but still running
    ]

    result = await prune(client, retention_worker, 30, batch_size=2)  # two batches for these three

    gone = {"run": False, "events": 0, "qa": False, "results": 0}
    assert [await stored(store, qa, run_id) for run_id in old] == [gone] * 3
    whole = {"run": True, "events": 3, "qa": True, "results": 1}
    assert [await stored(store, qa, run_id) for run_id in kept] == [whole] * 2
    assert result.runs >= 3 and result.run_events >= 9 and result.qa_runs >= 3 and result.qa_results >= 3
    assert not await opens(secrets, own_secret)
    assert await opens(secrets, shared_secret)  # the schedule's stored request still refers to it
    assert result.secrets >= 1

    assert await prune(client, retention_worker, 30) == PruneRunsResult()
    assert await prune(client, retention_worker, 0) == PruneRunsResult()  # 0 keeps everything

    await qa.delete(template)  # the schedule is deleted: nothing refers to its secret any more
    assert not await opens(secrets, shared_secret)


async def test_batch_job_folders_idle_that_long_are_removed(
    client: Client, store: RunStore, task_queue: str, tmp_path: Path
) -> None:
    work = tmp_path / "batch"
    idle, busy = work / "batch-idle", work / "batch-busy"
    for folder in (idle, busy):
        (folder / "parts").mkdir(parents=True)
        (folder / "parts" / "00000000.jsonl").write_text("{}\n")
    long_ago = (NOW - timedelta(days=40)).timestamp()
    for path in (idle / "parts" / "00000000.jsonl", idle / "parts", idle):
        os.utime(path, (long_ago, long_ago))
    os.utime(busy, (long_ago, long_ago))  # an old folder, but a part file written just now
    activities = RetentionActivities(store.engine, batch_work_dir=work)
    async with Worker(
        client, task_queue=task_queue, workflows=[RetentionWorkflow], activities=[activities.prune_runs]
    ) as worker:
        result = await prune(client, worker, 30)
    assert result.batch_folders == 1
    assert not idle.exists() and (busy / "parts" / "00000000.jsonl").exists()
