"""A batch job whose worker is killed at a random chunk completes on a new one, output identical."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from crucible.api.routes.batch import batch_input
from crucible.core.batch.models import BatchJobRequest
from crucible.core.batch.plain import run_plain
from crucible.core.config import Settings
from crucible.core.runs import new_run_id
from crucible.core.store import RunStore, fetch_all_events
from crucible.core.temporal import start_run
from crucible.workflows.batch_job import KIND, BatchJobWorkflow
from tests.support.batch_data import write_sample_csv, write_sample_jsonl
from tests.support.dev import Child
from tests.support.qa import serving
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
    # One segment for the whole job, so the kill always lands inside it: with segments of a
    # few seconds, one could end between the look at its progress and the kill, and the
    # next start on the new worker as a first attempt, with nothing to resume.
    arg = batch_input(
        settings.model_copy(update={"task_queue": task_queue, "batch_segment_s": 600.0}), job, job_id=run_id
    )
    kill_at = random.Random().randint(3, CHUNKS // 2)
    first = await start_worker(env, "worker", module="crucible")
    second: Child | None = None
    try:
        handle = await start_run(
            client, BatchJobWorkflow.run, arg, kind=KIND, task_queue=task_queue, run_id=run_id
        )
        # Kill it inside the segment, once its part files show chunk `kill_at` finished.
        parts = tmp_path / "home" / "batch" / run_id / "parts"
        async with asyncio.timeout(90):
            while len(list(parts.glob("*.jsonl"))) < kill_at:
                await asyncio.sleep(0.01)
        await first.kill()  # SIGKILL inside a segment: the activity in flight dies with it
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
    assert all(r["attempt"] >= 2 for r in resumed)
    progress = [e.data for e in events if e.type == "PROGRESS"]
    # The new attempt starts at the dead one's last heartbeat. The chunks the dead worker
    # finished after it are read back from disk; only the chunk it was in the middle of is
    # processed again, and that one had no output yet.
    completed = sum(p["processed"] + p["found_on_disk"] for p in progress)
    left = CHUNKS - resumed[0]["chunk"]
    assert completed == left, f"{completed - left} finished chunks were processed again"


async def test_after_kill_9_at_most_the_chunk_in_flight_is_sent_again(
    settings: Settings, client: Client, store: RunStore, task_queue: str, tmp_path: Path
) -> None:
    """The http processor's requests are side effects a target can count: a chunk processed
    twice would show as its rows' idempotency keys arriving twice."""
    seen: Counter[str] = Counter()

    async def receive(request: Request) -> JSONResponse:
        seen[request.headers["idempotency-key"]] += 1
        await asyncio.sleep(0.005)
        return JSONResponse({"stored": True}, status_code=201)

    rows, chunk = 3_000, 100
    source = tmp_path / "people.jsonl"
    write_sample_jsonl(source, rows)
    output = tmp_path / "results.jsonl"
    env = worker_env(settings, task_queue, tmp_path / "home")
    assert settings.secrets_key is not None
    env["CRUCIBLE_SECRETS_KEY"] = settings.secrets_key.get_secret_value()
    first = await start_worker(env, "worker", module="crucible")
    second: Child | None = None
    try:
        async with serving(Starlette(routes=[Route("/people/{id}", receive, methods=["PUT"])])) as target:
            run_id = new_run_id(KIND)
            job = BatchJobRequest(
                input=str(source),
                processor="http",
                output=str(output),
                chunk_size=chunk,
                options={"method": "PUT", "url": f"{target.url}/people/{{{{record.id}}}}", "concurrency": 8},
            )
            arg = batch_input(settings.model_copy(update={"task_queue": task_queue}), job, job_id=run_id)
            handle = await start_run(
                client, BatchJobWorkflow.run, arg, kind=KIND, task_queue=task_queue, run_id=run_id
            )
            kill_at = random.Random().randint(2, rows // chunk // 2)
            async with asyncio.timeout(60):
                while not any(
                    e.type == "PROGRESS" and e.data["chunks_done"] >= kill_at
                    for e in await fetch_all_events(store, run_id)
                ):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(random.Random().uniform(0, 0.3))  # inside a chunk, most likely
            await first.kill()
            sent_before = sum(seen.values())
            second = await start_worker(env, "worker", module="crucible")
            await asyncio.wait_for(handle.result(), 120)
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    assert sent_before < rows, "the worker died with requests still to send"
    keys = {f"{run_id}-{row}" for row in range(1, rows + 1)}
    assert set(seen) == keys, "every record was sent"
    twice = sorted(int(key.rsplit("-", 1)[1]) for key, count in seen.items() if count > 1)
    assert max(seen.values()) <= 2
    assert len({(row - 1) // chunk for row in twice}) <= 1, f"rows sent twice span chunks: {twice[:5]}…"
    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["row"] for r in results] == list(range(1, rows + 1)) and all(r["ok"] for r in results)
