"""Batch jobs through the API, on real Temporal, PostgreSQL and Kafka, over real files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from crucible.api.routes.batch import batch_input
from crucible.core.batch.models import BatchJobRequest
from crucible.core.batch.plain import run_plain
from crucible.core.config import Settings
from crucible.core.runs import new_run_id
from crucible.core.store import RunStore
from crucible.core.temporal import start_run
from crucible.workflows.batch_job import KIND, BatchJobWorkflow
from tests.support.batch_data import PERSON_SCHEMA, write_sample_csv, write_sample_jsonl
from tests.support.qa import assert_contiguous, events_of, serving, wait_closed

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(180)]

TOKEN = "batch-s3cret-token"


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def start(api: httpx.AsyncClient, **body: Any) -> str:
    response = await api.post("/api/v1/batch-jobs", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    assert run_id.startswith("batch-")
    return run_id


async def test_anomaly_detection_flags_exactly_what_one_plain_pass_flags(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    planted = write_sample_csv(source, 100_000, anomalies=40)
    output = tmp_path / "out" / "flagged.jsonl"
    output.parent.mkdir()
    run_id = await start(
        api, input=str(source), processor="anomaly-detection", chunk_size=10_000, output=str(output)
    )
    run = await wait_closed(api, run_id)
    assert run["status"] == "COMPLETED", run

    plain = run_plain(str(source), "anomaly-detection", {})
    flagged = read_lines(output)
    assert flagged == plain.lines
    assert set(planted) <= {line["row"] for line in flagged}
    assert all(line["id"] == f"r{line['row']:06d}" for line in flagged)

    events = await events_of(store, run_id)
    assert_contiguous(events)
    types = [e.type for e in events]
    assert types[:2] == ["REQUESTED", "INPUT_SCANNED"] and types[-1] == "COMPLETE"
    progress = [e.data for e in events if e.type == "PROGRESS"]
    assert progress and progress[-1]["chunks_done"] == progress[-1]["chunks_total"] == 10
    assert [p["chunks_done"] for p in progress] == sorted(p["chunks_done"] for p in progress)
    assert sum(p["processed"] for p in progress) == 10, "no chunk was processed twice"
    complete = events[-1].data
    assert complete["records"] == 100_000 and complete["output_lines"] == len(flagged)
    summary = complete["summary"]
    assert summary["flagged"] == len(flagged)
    assert {"mean", "std", "q1", "q3", "lower", "upper"} <= set(summary["thresholds"]["amount"])
    assert run["summary"]["records_done"] == 100_000
    assert not list(tmp_path.glob("out/.*.tmp")), "no temporary output is left behind"


async def test_progress_is_a_query_on_the_running_job(api: httpx.AsyncClient, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 30_000, anomalies=5)
    output = tmp_path / "flagged.jsonl"
    run_id = await start(
        api, input=str(source), processor="anomaly-detection", chunk_size=100, output=str(output)
    )
    seen: dict[str, Any] | None = None
    for _ in range(200):
        body = (await api.get(f"/api/v1/runs/{run_id}")).json()
        if body["status"] != "RUNNING":
            break
        if body["progress"] and body["progress"]["chunks_done"] > 0:
            seen = body["progress"]
            break
    assert seen is not None, "the running job answered its progress query"
    assert seen["chunks_total"] == 300 and 0 < seen["chunks_done"] <= 300
    assert seen["records_per_second"] > 0 and seen["eta_seconds"] is not None
    assert (await wait_closed(api, run_id))["progress"] is None  # a closed run has its summary instead


async def test_a_failing_chunk_is_skipped_and_listed(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    source = tmp_path / "people.jsonl"
    write_sample_jsonl(source, 1_000, bad_rows=(250,))
    output = tmp_path / "invalid.jsonl"
    run_id = await start(
        api,
        input=str(source),
        processor="schema-validation",
        options={"schema": PERSON_SCHEMA},
        chunk_size=100,
        max_chunk_retries=1,
        chunk_retry_delay_s=0,
        on_chunk_failure="skip",
        output=str(output),
    )
    run = await wait_closed(api, run_id)
    assert run["status"] == "COMPLETED", run
    events = await events_of(store, run_id)
    failed = [e.data for e in events if e.type == "CHUNK_FAILED"]
    assert len(failed) == 1
    assert (failed[0]["chunk"], failed[0]["first_row"], failed[0]["attempts"]) == (2, 201, 2)
    assert "row 250" in failed[0]["error"] and failed[0]["action"] == "skipped"
    assert [f["chunk"] for f in events[-1].data["failed_chunks"]] == [2]
    rows = {line["row"] for line in read_lines(output)}
    assert rows and not rows & set(range(201, 301)), "the skipped chunk has no output"


async def test_a_failed_job_resumes_from_its_checkpoint_once_its_input_is_fixed(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    source = tmp_path / "people.jsonl"
    write_sample_jsonl(source, 1_000, bad_rows=(350,))
    output = tmp_path / "invalid.jsonl"
    job = {
        "input": str(source),
        "processor": "schema-validation",
        "options": {"schema": PERSON_SCHEMA},
        "chunk_size": 100,
        "max_chunk_retries": 2,
        "chunk_retry_delay_s": 0.01,
        "output": str(output),
    }
    first = await start(api, **job)
    run = await wait_closed(api, first)
    assert run["status"] == "FAILED", run
    events = await events_of(store, first)
    assert [e.type for e in events[-2:]] == ["CHUNK_FAILED", "FAILED"]
    assert events[-2].data["chunk"] == 3 and events[-2].data["attempts"] == 3
    assert "chunk 3" in events[-1].data["message"]
    assert not output.exists(), "a failed job writes no output"

    write_sample_jsonl(source, 1_000)  # the same records, the broken line fixed
    resumed = await api.post(f"/api/v1/batch-jobs/{first}/resume")
    assert resumed.status_code == 202, resumed.text
    second = resumed.json()["run_id"]
    assert second != first and resumed.json()["resumed_from"] == first
    run = await wait_closed(api, second)
    assert run["status"] == "COMPLETED", run
    assert run["summary"]["resumed_from"] == first

    events = await events_of(store, second)
    assert events[1].type == "RESUMED" and events[1].data["chunk"] == 3
    progress = [e.data for e in events if e.type == "PROGRESS"]
    assert sum(p["processed"] for p in progress) == 7, "chunks 0-2 were not done again"
    assert read_lines(output) == run_plain(str(source), "schema-validation", {"schema": PERSON_SCHEMA}).lines

    again = await api.post(f"/api/v1/batch-jobs/{first}/resume")
    assert again.status_code == 409 and second in again.json()["detail"]
    done = await api.post(f"/api/v1/batch-jobs/{second}/resume")
    assert done.status_code == 409 and "COMPLETED" in done.json()["detail"]


async def test_a_cancelled_job_resumes_without_redoing_its_chunks(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 200_000, anomalies=20)
    output = tmp_path / "flagged.jsonl"
    first = await start(
        api, input=str(source), processor="anomaly-detection", chunk_size=500, output=str(output)
    )
    for _ in range(300):
        progress = (await api.get(f"/api/v1/runs/{first}")).json()["progress"]
        if progress and progress["chunks_done"] >= 20:
            break
    assert (await api.post(f"/api/v1/runs/{first}/cancel")).status_code == 202
    assert (await wait_closed(api, first))["status"] == "CANCELLED"
    done_before = [e.data for e in await events_of(store, first) if e.type == "PROGRESS"][-1]["chunks_done"]

    second = (await api.post(f"/api/v1/batch-jobs/{first}/resume")).json()["run_id"]
    assert (await wait_closed(api, second))["status"] == "COMPLETED"
    progress = [e.data for e in await events_of(store, second) if e.type == "PROGRESS"]
    redone = sum(p["processed"] for p in progress) - (400 - done_before)
    assert redone <= 0, f"{redone} chunks done before the cancel were processed again"
    assert read_lines(output) == run_plain(str(source), "anomaly-detection", {}).lines


async def test_an_input_url_is_downloaded_and_processed_and_its_token_never_shown(
    api: httpx.AsyncClient, store: RunStore, client: Client, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 5_000, anomalies=5)
    output = tmp_path / "flagged.jsonl"
    app = Starlette(routes=[Route("/rows.csv", lambda _: FileResponse(source))])
    async with serving(app) as server:
        url = f"{server.url}/rows.csv?X-Amz-Signature=presigned-{TOKEN}"
        run_id = await start(api, input=url, processor="anomaly-detection", output=str(output))
        assert (await wait_closed(api, run_id))["status"] == "COMPLETED"
    assert read_lines(output) == run_plain(str(source), "anomaly-detection", {}).lines
    events = await events_of(store, run_id)
    assert events[0].data["input"] == f"{server.url}/rows.csv?…"
    assert TOKEN not in json.dumps([e.data for e in events])
    history = await client.get_workflow_handle(run_id).fetch_history()
    assert TOKEN not in history.to_json(), "the workflow holds a reference to the URL, not the URL"


async def test_an_unreadable_input_fails_the_job_saying_why(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    run_id = await start(
        api,
        input=str(tmp_path / "missing.csv"),
        processor="anomaly-detection",
        output=str(tmp_path / "o.jsonl"),
    )
    assert (await wait_closed(api, run_id))["status"] == "FAILED"
    events = await events_of(store, run_id)
    assert [e.type for e in events] == ["REQUESTED", "INPUT_INVALID", "FAILED"]
    assert "missing.csv" in events[1].data["reason"]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"input": "rows.csv"}, ["body", "input"], "absolute path"),
        ({"input": "ftp://host/rows.csv"}, ["body", "input"], "scheme"),
        ({"input": "/data/rows.parquet"}, ["body"], "format"),
        ({"output": "out.jsonl"}, ["body", "output"], "absolute"),
        ({"processor": "magic"}, ["body", "processor"], ""),
        ({"chunk_size": 0}, ["body", "chunk_size"], ""),
        ({"max_chunk_retries": -1}, ["body", "max_chunk_retries"], ""),
        ({"on_chunk_failure": "ignore"}, ["body", "on_chunk_failure"], ""),
        ({"options": {"z_threshold": -1}}, ["body", "options", "z_threshold"], ""),
        ({"headers": {"Authorization": "x"}}, ["body"], "http processor"),
        ({"surprise": 1}, ["body", "surprise"], ""),
    ],
)
async def test_bad_jobs_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[str], words: str
) -> None:
    job = {"input": "/data/rows.csv", "processor": "anomaly-detection", "output": "/data/out.jsonl", **body}
    response = await api.post("/api/v1/batch-jobs", json=job)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and words in e["msg"] for e in errors), errors


async def test_resume_answers_404_and_409_where_it_cannot(api: httpx.AsyncClient) -> None:
    missing = await api.post(f"/api/v1/batch-jobs/batch-{'0' * 32}/resume")
    assert missing.status_code == 404
    not_batch = await api.post(f"/api/v1/batch-jobs/qa-{'0' * 32}/resume")
    assert not_batch.status_code == 404


async def test_a_long_job_continues_as_new_and_keeps_its_log_whole(
    api: httpx.AsyncClient, client: Client, store: RunStore, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 20_000, anomalies=10)
    output = tmp_path / "flagged.jsonl"
    job = BatchJobRequest(
        input=str(source), processor="anomaly-detection", output=str(output), chunk_size=200
    )
    run_id = new_run_id(KIND)
    arg = dataclasses.replace(batch_input(settings, job, job_id=run_id), segments_per_run=2, segment_s=0.05)
    handle = await start_run(
        client, BatchJobWorkflow.run, arg, kind=KIND, task_queue=settings.task_queue, run_id=run_id
    )
    result = await handle.result()
    assert result.records == 20_000
    assert read_lines(output) == run_plain(str(source), "anomaly-detection", {}).lines
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{run_id}'")]
    assert len(runs) >= 2, "the job continued as new"
    events = await events_of(store, run_id)
    assert_contiguous(events)
    assert [e.type for e in events].count("REQUESTED") == 1 and events[-1].type == "COMPLETE"
    progress = [e.data for e in events if e.type == "PROGRESS"]
    assert progress[-1]["chunks_done"] == 100 and sum(p["processed"] for p in progress) == 100


async def test_the_http_processor_sends_each_record_once_with_its_secret_header(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    async def receive(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        body = await request.json()
        seen.append((request.headers["idempotency-key"], request.url.path, body))
        return JSONResponse({"ok": True}, status_code=500 if body["name"] == "person 7" else 201)

    source = tmp_path / "people.jsonl"
    write_sample_jsonl(source, 50)
    output = tmp_path / "results.jsonl"
    async with serving(Starlette(routes=[Route("/people/{id}", receive, methods=["PUT"])])) as target:
        run_id = await start(
            api,
            input=str(source),
            processor="http",
            chunk_size=20,
            output=str(output),
            options={
                "method": "PUT",
                "url": f"{target.url}/people/{{{{record.id}}}}",
                "body": {"name": "{{record.name}}", "age": "{{record.age}}"},
                "concurrency": 4,
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        run = await wait_closed(api, run_id)
    assert run["status"] == "COMPLETED", run
    assert len(seen) == 50 and len({key for key, _, _ in seen}) == 50, "each record was sent once"
    assert {key for key, _, _ in seen} == {f"{run_id}-{row}" for row in range(1, 51)}
    assert {path for _, path, _ in seen} == {f"/people/{row}" for row in range(1, 51)}
    results = read_lines(output)
    assert [r["row"] for r in results] == list(range(1, 51))
    failed = [r for r in results if not r["ok"]]
    assert len(failed) == 1 and failed[0]["status"] == 500
    first = next(body for _, path, body in seen if path == "/people/1")
    assert isinstance(first["age"], int), "a lone placeholder keeps the field's type"
    events = await events_of(store, run_id)
    assert TOKEN not in json.dumps([e.data for e in events]) and TOKEN not in output.read_text()
    assert events[0].data["header_names"] == ["Authorization"]
