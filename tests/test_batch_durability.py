"""A batch job whose worker is killed at a random chunk completes on a new one, output identical."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
from temporalio.client import Client

from crucible.api.routes.batch import batch_input
from crucible.core.batch.models import BatchJobRequest
from crucible.core.batch.plain import run_plain
from crucible.core.config import Settings
from crucible.core.runs import new_run_id
from crucible.core.store import RunStore, fetch_all_events
from crucible.core.temporal import start_run
from crucible.workflows.batch_job import KIND, BatchJobWorkflow
from tests.support.batch_data import write_sample_csv
from tests.support.dev import Child
from tests.test_durability import start_worker, worker_env

pytestmark = pytest.mark.timeout(240)

ROWS = 300_000
CHUNK = 5_000
CHUNKS = ROWS // CHUNK


async def test_a_batch_job_survives_kill_9_of_its_worker(
    settings: Settings, client: Client, store: RunStore, task_queue: str, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, ROWS, anomalies=30)
    output = tmp_path / "flagged.jsonl"
    env = worker_env(settings, task_queue, tmp_path / "home")
    assert settings.secrets_key is not None
    env["CRUCIBLE_SECRETS_KEY"] = settings.secrets_key.get_secret_value()

    run_id = new_run_id(KIND)
    job = BatchJobRequest(
        input=str(source), processor="anomaly-detection", output=str(output), chunk_size=CHUNK
    )
    arg = batch_input(settings.model_copy(update={"task_queue": task_queue}), job, job_id=run_id)
    kill_at = random.Random().randint(3, CHUNKS // 2)
    first = await start_worker(env, "worker", module="crucible")
    second: Child | None = None
    try:
        handle = await start_run(
            client, BatchJobWorkflow.run, arg, kind=KIND, task_queue=task_queue, run_id=run_id
        )
        async with asyncio.timeout(90):
            while True:
                progress = [e.data for e in await fetch_all_events(store, run_id) if e.type == "PROGRESS"]
                if progress and progress[-1]["chunks_done"] >= kill_at:
                    break
                await asyncio.sleep(0.02)
        await first.kill()  # SIGKILL between or inside chunks: the segment in flight dies with it
        second = await start_worker(env, "worker", module="crucible")
        result = await asyncio.wait_for(handle.result(), 150)
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    plain = run_plain(str(source), "anomaly-detection", {})
    assert [json.loads(line) for line in output.read_text().splitlines()] == plain.lines
    assert (result.records, result.chunks) == (ROWS, CHUNKS)

    events = list(await fetch_all_events(store, run_id))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    resumed = [e.data for e in events if e.type == "RESUMED"]
    assert resumed, "the events show where the job resumed"
    assert all(r["attempt"] >= 2 and r["chunk"] >= kill_at for r in resumed)
    progress = [e.data for e in events if e.type == "PROGRESS"]
    # Chunks the dead worker finished after its last recorded segment are read back from disk;
    # only the chunk it was in the middle of is processed again, and that one had no output yet.
    completed = sum(p["processed"] + p["found_on_disk"] for p in progress)
    assert completed == CHUNKS, f"{completed - CHUNKS} finished chunks were processed again"
