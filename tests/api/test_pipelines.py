"""Pipelines through the API: batch → validate → notify, each step a child workflow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.pipelines.store import PipelineStore
from crucible.core.secrets import SecretStore, SecretsUnavailableError, secret_box
from crucible.core.store import RunStore
from tests.support.batch_data import write_sample_csv
from tests.support.qa import assert_contiguous, events_of, serving, wait_closed
from tests.support.servers import ApiServer

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(120)]

HOOK_PATH = "/services/T000/B000/s3cr3t-hook-token"


class Hook:
    """An incoming webhook that answers as Slack's does: 200 ``ok`` for a message with text."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def receive(self, request: Request) -> PlainTextResponse:
        message = await request.json()
        if not isinstance(message.get("text"), str) or not message["text"]:
            return PlainTextResponse("no_text", status_code=400)
        self.messages.append(message)
        return PlainTextResponse("ok")


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Hook, ApiServer]]:
    receiver = Hook()
    async with serving(Starlette(routes=[Route(HOOK_PATH, receiver.receive, methods=["POST"])])) as server:
        yield receiver, server


def nightly(tmp_path: Path, hook_url: str, *, max_flagged: int) -> dict[str, Any]:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 20_000, anomalies=10)
    return {
        "name": "Nightly anomalies",
        "steps": [
            {
                "type": "batch",
                "name": "detect",
                "job": {
                    "input": str(source),
                    "processor": "anomaly-detection",
                    "chunk_size": 5_000,
                    "output": str(tmp_path / "flagged.jsonl"),
                },
            },
            {
                "type": "validate",
                "name": "few anomalies",
                "assertions": [
                    {"path": "records", "op": "==", "value": 20_000},
                    {"path": "failed_chunks", "op": "==", "value": 0},
                    {"path": "output_lines", "op": "<=", "value": max_flagged},
                ],
            },
            {"type": "notify", "name": "tell the team", "webhook_url": hook_url},
        ],
    }


async def test_a_pipeline_runs_its_steps_as_child_workflows_and_notifies(
    api: httpx.AsyncClient, store: RunStore, client: Client, hook: tuple[Hook, ApiServer], tmp_path: Path
) -> None:
    receiver, server = hook
    created = await api.post(
        "/api/v1/pipelines", json=nightly(tmp_path, server.url + HOOK_PATH, max_flagged=500)
    )
    assert created.status_code == 201, created.text
    pipeline = created.json()
    assert pipeline["pipeline_id"].startswith("pl-nightly-anomalies-")
    assert "s3cr3t" not in created.text, "the webhook URL is a secret"
    assert pipeline["steps"][2]["webhook_host"] == "127.0.0.1"

    started = await api.post(f"/api/v1/pipelines/{pipeline['pipeline_id']}/runs")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert run_id.startswith("pipeline-") and run_id != pipeline["pipeline_id"]
    run = await wait_closed(api, run_id)
    assert run["status"] == "COMPLETED", run

    events = await events_of(store, run_id)
    assert_contiguous(events)
    assert [e.type for e in events] == [
        "REQUESTED",
        *["STEP_STARTED", "STEP_COMPLETED"] * 3,
        "COMPLETE",
    ]
    batch_id = events[1].data["child_id"]
    assert batch_id.startswith("batch-")
    assert (await api.get(f"/api/v1/runs/{batch_id}")).json()["status"] == "COMPLETED"
    assert events[4].data["result"]["passed"] is True
    parent = (await client.get_workflow_handle(batch_id).describe()).parent_id
    assert parent == run_id, "the batch step is a child of the pipeline run"

    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert run_id in message["text"] and message["blocks"][0]["type"] == "section"
    assert "detect (batch)" in message["blocks"][1]["text"]["text"]
    assert "s3cr3t" not in str([e.data for e in events])


async def test_a_failed_step_stops_the_pipeline_and_says_why(
    api: httpx.AsyncClient, store: RunStore, hook: tuple[Hook, ApiServer], tmp_path: Path
) -> None:
    receiver, server = hook
    created = (
        await api.post("/api/v1/pipelines", json=nightly(tmp_path, server.url + HOOK_PATH, max_flagged=1))
    ).json()
    run_id = (await api.post(f"/api/v1/pipelines/{created['pipeline_id']}/runs")).json()["run_id"]
    assert (await wait_closed(api, run_id))["status"] == "FAILED"
    events = await events_of(store, run_id)
    assert [e.type for e in events][-3:] == ["STEP_STARTED", "STEP_FAILED", "FAILED"]
    failed = events[-2].data
    assert (failed["index"], failed["step"]) == (2, "few anomalies")
    assert "output_lines is" in failed["reason"] and "expected <= 1" in failed["reason"]
    assert receiver.messages == [], "no notification after a failed step"


async def test_pipeline_definitions_are_listed_read_and_deleted(
    api: httpx.AsyncClient, store: RunStore, settings: Settings, tmp_path: Path
) -> None:
    body = nightly(tmp_path, "https://hooks.example.com/x", max_flagged=10)
    ids = [(await api.post("/api/v1/pipelines", json=body)).json()["pipeline_id"] for _ in range(3)]
    page = (await api.get("/api/v1/pipelines", params={"limit": 2})).json()
    assert [p["pipeline_id"] for p in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = (await api.get("/api/v1/pipelines", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert rest["items"][0]["pipeline_id"] == ids[0]
    assert (await api.get(f"/api/v1/pipelines/{ids[0]}")).json()["steps"][0]["job"]["chunk_size"] == 5_000
    row = await PipelineStore(store.engine).get(ids[0])
    assert row is not None
    webhook = row.steps[2]["webhook_secret"]
    secrets = SecretStore(store.engine, secret_box(settings))
    assert await secrets.get(webhook) == "https://hooks.example.com/x"
    assert (await api.delete(f"/api/v1/pipelines/{ids[0]}")).status_code == 204
    with pytest.raises(SecretsUnavailableError):
        await secrets.get(webhook)  # the webhook URL went with its pipeline
    assert (await api.get(f"/api/v1/pipelines/{ids[0]}")).status_code == 404
    assert (await api.post(f"/api/v1/pipelines/{ids[0]}/runs")).status_code == 404


@pytest.mark.parametrize(
    ("steps", "loc"),
    [
        ([], ["body", "steps"]),
        ([{"type": "validate", "assertions": [{"path": "x", "op": "==", "value": 1}]}], ["body"]),
        ([{"type": "sleep"}], ["body", "steps", 0]),
        ([{"type": "notify", "webhook_url": "not a url"}], ["body", "steps", 0, "notify", "webhook_url"]),
        (
            [
                {
                    "type": "batch",
                    "job": {"input": "/d/a.csv", "processor": "anomaly-detection", "output": "/d/o"},
                },
                {"type": "validate", "assertions": [{"path": "x", "op": "~", "value": 1}]},
            ],
            ["body", "steps", 1, "validate", "assertions", 0, "op"],
        ),
        (
            [
                {
                    "type": "batch",
                    "job": {
                        "input": "/d/a.csv",
                        "processor": "anomaly-detection",
                        "output": "/d/o",
                        "options": {"iqr_k": 0},
                    },
                }
            ],
            ["body", "steps", 0, "job", "options", "iqr_k"],
        ),
    ],
)
async def test_bad_pipelines_are_422_naming_the_step(
    api: httpx.AsyncClient, steps: list[dict[str, Any]], loc: list[Any]
) -> None:
    response = await api.post("/api/v1/pipelines", json={"name": "bad", "steps": steps})
    assert response.status_code == 422, response.text
    assert any(e["loc"][: len(loc)] == loc for e in response.json()["detail"]), response.json()


async def test_a_cancelled_pipeline_run_ends_cancelled_with_its_batch_step(
    api: httpx.AsyncClient, store: RunStore, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 200_000, anomalies=10)
    job = {
        "input": str(source),
        "processor": "anomaly-detection",
        "chunk_size": 200,
        "output": str(tmp_path / "o"),
    }
    created = (
        await api.post("/api/v1/pipelines", json={"name": "big", "steps": [{"type": "batch", "job": job}]})
    ).json()
    run_id = (await api.post(f"/api/v1/pipelines/{created['pipeline_id']}/runs")).json()["run_id"]
    async with asyncio.timeout(30):
        while not (started := [e for e in await events_of(store, run_id) if e.type == "STEP_STARTED"]):
            await asyncio.sleep(0.1)
    batch_id = started[0].data["child_id"]
    assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
    assert (await wait_closed(api, run_id))["status"] == "CANCELLED"
    assert [e.type for e in await events_of(store, run_id)][-1] == "CANCELLED"
    assert (await wait_closed(api, batch_id))["status"] == "CANCELLED"
