"""Bringing a Chaos Toolkit experiment: the example file, imported through the API, runs to a verdict;
what Crucible cannot run is a 422 that names it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from crucible.core.store import RunStore
from tests.support.chaos import TEST_ALERTS, Target, approve, events_of, states
from tests.support.qa import wait_closed

pytestmark = pytest.mark.timeout(120)
EXAMPLE = Path(__file__).parents[2] / "examples" / "chaos" / "chaostoolkit.json"


def _example(target: Target) -> dict[str, object]:
    document = json.loads(EXAMPLE.read_text().replace("http://127.0.0.1:8099", target.url))
    document["method"][0]["pauses"] = {"after": 1}
    return dict(document)


async def test_the_example_experiment_runs_its_probes_and_actions_and_reports_a_verdict(
    chaos_api: httpx.AsyncClient, target: Target, store: RunStore, reviewer_headers: dict[str, str]
) -> None:
    body = {
        "experiment": _example(target),
        "overrides": {
            "duration_s": 3,
            "monitoring_interval_s": 1,
            "baseline_window_s": 1,
            "recovery_timeout_s": 10,
            "preflight": {"alerts_query": TEST_ALERTS, "warmup_s": 0},
            "created_by": "alice",
        },
    }
    created = await chaos_api.post("/api/v1/chaos-experiments/import", json=body)
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    await approve(chaos_api, run_id, reviewer_headers)
    run = await wait_closed(chaos_api, run_id)
    assert run["status"] == "COMPLETED" and run["verdict"] == "HypothesisConfirmed", run

    events = await events_of(store, run_id)
    assert "Monitoring" in states(events)
    [injected] = [e.data for e in events if e.type == "FAULT_INJECTED"]
    assert [(o["name"], o["ok"]) for o in injected["outcomes"]] == [
        ("announce-the-fault", True),
        ("shop-is-healthy", True),
    ]
    assert "fault window opens" in injected["outcomes"][0]["output"]
    [rolled_back] = [e.data for e in events if e.type == "FAULT_ROLLED_BACK"]
    assert rolled_back["ok"] and rolled_back["outcomes"][0]["name"] == "announce-the-rollback"
    chaos = [e.data for e in events if e.type == "SLO_MEASURED" and e.data["phase"] == "chaos"]
    assert chaos and all(s["met"] and s["value"] == 200 for sample in chaos for s in sample["slos"])
    detail = (await chaos_api.get(f"/api/v1/chaos-experiments/{run_id}")).json()
    assert {r["slo"] for r in detail["results"]} == {"shop-is-healthy", "products-are-listed"}
    assert detail["experiment"]["source"] == "chaostoolkit"


async def test_parts_crucible_cannot_run_are_each_named(chaos_api: httpx.AsyncClient, target: Target) -> None:
    document = _example(target)
    document["method"] = [
        {"type": "action", "name": "py", "provider": {"type": "python", "module": "os", "func": "getcwd"}},
        {
            "type": "action",
            "name": "rm",
            "provider": {"type": "process", "path": "rm", "arguments": "-rf /tmp/x"},
        },
    ]
    document["controls"] = [{"name": "tracing", "provider": {"type": "python", "module": "x"}}]
    refused = await chaos_api.post("/api/v1/chaos-experiments/import", json={"experiment": document})
    assert refused.status_code == 422, refused.text
    locs = [tuple(e["loc"]) for e in refused.json()["detail"]]
    assert ("body", "experiment", "method", 0, "provider", "type") in locs
    assert any(loc[:3] == ("body", "experiment", "controls") for loc in locs)

    document["method"] = [document["method"][1]]  # type: ignore[index]
    del document["controls"]
    refused = await chaos_api.post(
        "/api/v1/chaos-experiments/import", json={"experiment": document, "overrides": {"duration_s": 3}}
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"][:4] == ["body", "fault", "method", 0] and "allowlist" in error["msg"]


async def test_overrides_are_checked_like_the_fields_they_set(
    chaos_api: httpx.AsyncClient, target: Target
) -> None:
    body = {"experiment": _example(target), "overrides": {"duration_s": "a while", "target": ""}}
    refused = await chaos_api.post("/api/v1/chaos-experiments/import", json=body)
    assert refused.status_code == 422, refused.text
    # Each at its own field, as the published schema (ImportOverrides) says them.
    locs = {tuple(error["loc"]) for error in refused.json()["detail"]}
    assert locs == {("body", "overrides", "duration_s"), ("body", "overrides", "target")}
    unknown = await chaos_api.post(
        "/api/v1/chaos-experiments/import", json={"experiment": _example(target), "overrides": {"name": "x"}}
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "overrides", "name"]
