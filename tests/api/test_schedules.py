"""Schedules through the API: Temporal Schedules that start QA runs against the demo target."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from crucible.api.app import create_app
from crucible.core.config import Settings
from crucible.core.qa.store import QaStore
from crucible.core.schedules import ensure_retention_schedule
from crucible.core.store import RunStore
from crucible.stack.services import free_port
from examples.demo_target.app import create_app as demo_app
from tests.support.qa import DEMO_SPEC, serving, wait_closed
from tests.support.servers import ApiServer

YEARLY = "0 0 1 1 *"


@pytest.fixture(scope="module")
async def demo() -> AsyncIterator[str]:
    async with serving(demo_app()) as server:
        yield server.url


def qa_schedule(demo: str, **options: Any) -> dict[str, Any]:
    run = {
        "spec": DEMO_SPEC.read_text(),
        "base_url": demo,
        "headers": {"X-Api-Key": "sched-secret"},
        "seed": 7,
    }
    return {"name": f"Smoke {uuid.uuid4().hex[:8]}", "target": {"kind": "qa", "run": run}, **options}


async def test_a_triggered_qa_schedule_runs_and_its_report_is_there(
    api: httpx.AsyncClient, client: Client, store: RunStore, crucible_worker: Any, demo: str
) -> None:
    created = await api.post("/api/v1/schedules", json=qa_schedule(demo, cron=YEARLY, note="nightly smoke"))
    assert created.status_code == 201, created.text
    schedule = created.json()
    schedule_id = schedule["schedule_id"]
    assert schedule_id.startswith("smoke-") and schedule["kind"] == "qa"
    assert (schedule["cron"], schedule["time_zone"], schedule["overlap"]) == (YEARLY, "UTC", "skip")
    assert (schedule["paused"], schedule["note"], schedule["pause_on_failure"]) == (
        False,
        "nightly smoke",
        False,
    )
    assert schedule["target"]["base_url"] == demo and schedule["target"]["header_names"] == ["X-Api-Key"]
    assert "sched-secret" not in created.text
    assert schedule["temporal_ui_url"].endswith(f"/schedules/{schedule_id}")
    try:
        assert (await api.post(f"/api/v1/schedules/{schedule_id}/trigger")).status_code == 202
        async with asyncio.timeout(15):
            while not (runs := (await api.get(f"/api/v1/schedules/{schedule_id}")).json()["recent_runs"]):
                await asyncio.sleep(0.2)
        run_id = runs[0]["run_id"]
        assert run_id.startswith(f"qa-{schedule_id}-") and runs[0]["link"] == f"/api/v1/runs/{run_id}"

        run = await wait_closed(api, run_id)
        assert (run["kind"], run["status"], run["verdict"]) == (
            "qa",
            "COMPLETED",
            "FAILED",
        )  # the demo's defect
        events = (await api.get(f"/api/v1/runs/{run_id}/events")).json()
        assert events["done"] and events["items"][-1]["type"] == "COMPLETE"
        report = (await api.get(f"/api/v1/runs/{run_id}/report")).json()
        assert (report["operations"], report["passed"]) == (8, 7)

        history = await client.get_workflow_handle(run_id).fetch_history()
        assert "sched-secret" not in str(history.to_json_dict())
    finally:
        assert (await api.delete(f"/api/v1/schedules/{schedule_id}")).status_code == 204
    assert (await api.get(f"/api/v1/schedules/{schedule_id}")).status_code == 404
    # The schedule's stored request is gone; the run keeps its own, and with it the report.
    assert await QaStore(store.engine).get(schedule["target"]["template"]) is None
    assert (await api.get(f"/api/v1/runs/{run_id}/report")).status_code == 200


async def test_pause_unpause_backfill_list_and_visibility(
    api: httpx.AsyncClient, client: Client, demo: str
) -> None:
    body = qa_schedule(demo, interval_s=3600, paused=True, time_zone="Europe/Paris", overlap="buffer_all")
    created = await api.post("/api/v1/schedules", json=body)
    assert created.status_code == 201, created.text
    schedule_id = created.json()["schedule_id"]
    base = f"/api/v1/schedules/{schedule_id}"
    try:
        paused = (await api.post(f"{base}/pause", json={"note": "maintenance"})).json()
        assert (paused["paused"], paused["note"]) == (True, "maintenance")
        unpaused = (await api.post(f"{base}/unpause")).json()
        assert (unpaused["paused"], unpaused["note"]) == (False, "unpaused through Crucible")
        assert (unpaused["interval_s"], unpaused["overlap"], unpaused["time_zone"]) == (
            3600,
            "buffer_all",
            "Europe/Paris",
        )
        assert unpaused["next_action_times"]

        assert (await api.post(f"{base}/pause")).json()["paused"] is True
        backfill = {"start": "2025-01-01T00:30:00Z", "end": "2025-01-01T01:30:00"}
        accepted = await api.post(f"{base}/backfill", json={**backfill, "overlap": "skip"})
        assert accepted.status_code == 202 and accepted.json()["actions"] == 1
        async with asyncio.timeout(15):
            while not (runs := (await api.get(base)).json()["recent_runs"]):
                await asyncio.sleep(0.2)
        assert runs[0]["run_id"] == f"qa-{schedule_id}-2025-01-01T01:00:00Z"
        await client.get_workflow_handle(runs[0]["run_id"]).terminate("not needed for this test")

        bad = await api.post(
            f"{base}/backfill", json={"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "end"]

        # Visible where Temporal users look, under its readable id, and in the API's list.
        async with asyncio.timeout(15):
            while schedule_id not in [s.id async for s in await client.list_schedules()]:
                await asyncio.sleep(0.2)
        listed: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = (
                await api.get("/api/v1/schedules", params={"kind": "qa", "limit": 1, "cursor": cursor})
            ).json()
            listed += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        (mine,) = [s for s in listed if s["schedule_id"] == schedule_id]
        assert (mine["kind"], mine["paused"], mine["interval_s"]) == ("qa", True, 3600)
        unknown = await api.get("/api/v1/schedules", params={"kind": "nope"})
        assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "kind"]
    finally:
        assert (await api.delete(base)).status_code == 204


async def test_a_taken_name_is_409_and_an_unknown_schedule_404(api: httpx.AsyncClient, demo: str) -> None:
    body = qa_schedule(demo, cron=YEARLY, paused=True)
    first = await api.post("/api/v1/schedules", json=body)
    assert first.status_code == 201
    schedule_id = first.json()["schedule_id"]
    try:
        again = await api.post("/api/v1/schedules", json={**body, "name": body["name"].upper() + "!"})
        assert again.status_code == 409 and schedule_id in again.json()["detail"]
    finally:
        await api.delete(f"/api/v1/schedules/{schedule_id}")

    base = f"/api/v1/schedules/nope-{uuid.uuid4().hex[:8]}"
    backfill = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"}
    for method, path, json in [
        ("GET", base, None),
        ("POST", f"{base}/pause", None),
        ("POST", f"{base}/unpause", None),
        ("POST", f"{base}/trigger", None),
        ("POST", f"{base}/backfill", backfill),
        ("DELETE", base, None),
    ]:
        response = await api.request(method, path, json=json)
        assert response.status_code == 404, (method, path, response.text)
        assert "not found" in response.json()["detail"]


async def test_bad_input_is_422_naming_every_field(api: httpx.AsyncClient, demo: str) -> None:
    bad_cron = await api.post("/api/v1/schedules", json=qa_schedule(demo, cron="61 * * * *"))
    assert bad_cron.status_code == 422
    (error,) = bad_cron.json()["detail"]
    assert error["loc"] == ["body", "cron"]
    assert "'61 * * * *'" in error["msg"] and "out of range" in error["msg"]

    everything = qa_schedule(demo, cron="0 0 L * *", time_zone="Mars/Olympus", overlap="sometimes")
    everything["target"]["run"]["base_url"] = "not a url"
    response = await api.post("/api/v1/schedules", json=everything)
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert set(errors) == {
        ("body", "cron"),
        ("body", "time_zone"),
        ("body", "overlap"),
        ("body", "target", "run", "base_url"),
    }
    assert "'0 0 L * *'" in errors[("body", "cron")] and "Mars/Olympus" in errors[("body", "time_zone")]

    for timing in ({}, {"cron": YEARLY, "interval_s": 60}):
        neither_or_both = await api.post("/api/v1/schedules", json=qa_schedule(demo, **timing))
        assert neither_or_both.status_code == 422
        assert "either cron or interval_s" in neither_or_both.json()["detail"][0]["msg"]

    for target, loc in [
        ({"kind": "cron-job"}, ["body", "target", "kind"]),
        ({"kind": "qa"}, ["body", "target", "run"]),
        ("qa", ["body", "target"]),
    ]:
        response = await api.post("/api/v1/schedules", json={"name": "x", "target": target, "cron": YEARLY})
        assert response.status_code == 422 and [e["loc"] for e in response.json()["detail"]] == [loc]

    replay = qa_schedule(demo, cron=YEARLY)
    replay["target"]["run"] = {"base_url": demo, "replay_of": f"qa-{uuid.uuid4().hex}"}
    response = await api.post("/api/v1/schedules", json=replay)
    assert response.status_code == 404 and "not found" in response.json()["detail"]

    for name in ("!!!", "crucible-retention", ""):
        response = await api.post("/api/v1/schedules", json={**qa_schedule(demo, cron=YEARLY), "name": name})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "name"]


async def test_temporal_out_of_reach_is_503(settings: Settings, auth_headers: dict[str, str]) -> None:
    unreachable = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    server = ApiServer(create_app(unreachable))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth_headers, timeout=30) as http:
            for method, path in [
                ("GET", "/api/v1/schedules"),
                ("GET", "/api/v1/schedules/x"),
                ("DELETE", "/api/v1/schedules/x"),
            ]:
                response = await http.request(method, path)
                assert response.status_code == 503, response.text
                assert response.json()["component"] == "temporal"
    finally:
        await server.stop()


async def test_crucible_own_schedules_are_read_but_not_changed(
    api: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    await ensure_retention_schedule(client, task_queue=settings.task_queue, days=30, cron="17 3 * * *")
    assert (await api.get("/api/v1/schedules/crucible-retention")).status_code == 200
    for action in ("pause", "unpause", "trigger"):
        response = await api.post(f"/api/v1/schedules/crucible-retention/{action}", json={})
        assert response.status_code == 409, (action, response.text)
    assert (await api.delete("/api/v1/schedules/crucible-retention")).status_code == 409
    assert (await client.get_schedule_handle("crucible-retention").describe()).schedule.state.paused is False
