"""Pipelines and batch jobs on Temporal Schedules: every 10 s, paused, triggered now."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.support.batch_data import write_sample_csv
from tests.support.qa import wait_closed

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(120)]


async def runs_of(api: httpx.AsyncClient, schedule_id: str) -> list[str]:
    body = (await api.get(f"/api/v1/schedules/{schedule_id}")).json()
    return [run["run_id"] for run in body["recent_runs"]]


async def test_a_pipeline_every_10_s_runs_pauses_and_triggers(
    api: httpx.AsyncClient, client: Client, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 2_000, anomalies=3)
    job = {"input": str(source), "processor": "anomaly-detection", "output": str(tmp_path / "flagged.jsonl")}
    pipeline = (
        await api.post("/api/v1/pipelines", json={"name": "tiny", "steps": [{"type": "batch", "job": job}]})
    ).json()
    name = f"tiny every 10s {uuid.uuid4().hex[:6]}"
    created = await api.post(
        "/api/v1/schedules",
        json={
            "name": name,
            "target": {"kind": "pipeline", "pipeline_id": pipeline["pipeline_id"]},
            "interval_s": 10,
        },
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["schedule_id"]
    assert schedule_id.startswith("tiny-every-10s-")
    listed = [s.id async for s in await client.list_schedules()]
    assert schedule_id in listed, "visible to `temporal schedule list`"

    started = time.monotonic()
    runs: list[str] = []
    while time.monotonic() - started < 30 and len(runs) < 2:
        await asyncio.sleep(0.5)
        runs = await runs_of(api, schedule_id)
    assert len(runs) >= 2, f"{len(runs)} runs within 30 s"
    for run_id in runs:
        assert run_id.startswith("pipeline-")
        run = await wait_closed(api, run_id, timeout=30)
        assert (run["kind"], run["status"]) == ("pipeline", "COMPLETED")

    assert (
        await api.post(f"/api/v1/schedules/{schedule_id}/pause", json={"note": "quiet"})
    ).status_code == 200
    before = set(await runs_of(api, schedule_id))
    await asyncio.sleep(12)
    assert set(await runs_of(api, schedule_id)) == before, "a paused schedule starts nothing"

    triggered = await api.post(f"/api/v1/schedules/{schedule_id}/trigger", json={})
    assert triggered.status_code == 202, triggered.text
    new: set[str] = set()
    async with asyncio.timeout(10):
        while not new:
            await asyncio.sleep(0.3)
            new = set(await runs_of(api, schedule_id)) - before
    assert len(new) == 1
    assert (await wait_closed(api, new.pop(), timeout=30))["status"] == "COMPLETED"
    assert (await api.delete(f"/api/v1/schedules/{schedule_id}")).status_code == 204


async def test_a_scheduled_batch_job_runs_as_a_job_of_its_own(api: httpx.AsyncClient, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 3_000, anomalies=3)
    output = tmp_path / "flagged.jsonl"
    target: dict[str, Any] = {
        "kind": "batch",
        "job": {"input": str(source), "processor": "anomaly-detection", "output": str(output)},
    }
    name = f"batch {uuid.uuid4().hex[:6]}"
    created = await api.post("/api/v1/schedules", json={"name": name, "target": target, "cron": "0 0 1 1 *"})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["schedule_id"]
    assert created.json()["target"]["processor"] == "anomaly-detection"
    for _ in range(2):  # twice: the second must not find the first's chunks as its own
        assert (await api.post(f"/api/v1/schedules/{schedule_id}/trigger", json={})).status_code == 202
        async with asyncio.timeout(15):
            while not (runs := await runs_of(api, schedule_id)):
                await asyncio.sleep(0.2)
        run = await wait_closed(api, runs[0], timeout=30)
        assert run["status"] == "COMPLETED" and run["summary"]["records_done"] == 3_000
        output.unlink()
        await asyncio.sleep(1.1)  # schedule actions are a second apart at least
    assert len(await runs_of(api, schedule_id)) == 2

    bad = await api.post(
        "/api/v1/schedules",
        json={
            "name": "bad",
            "target": {**target, "job": {**target["job"], "options": {"z_threshold": 0}}},
            "interval_s": 60,
        },
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "target", "job", "options", "z_threshold"]
    missing = await api.post(
        "/api/v1/schedules",
        json={"name": "nope", "target": {"kind": "pipeline", "pipeline_id": "pl-nope"}, "interval_s": 60},
    )
    assert missing.status_code == 404 and missing.json()["detail"] == "pipeline 'pl-nope' not found"
    assert (await api.delete(f"/api/v1/schedules/{schedule_id}")).status_code == 204
