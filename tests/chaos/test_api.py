"""What the chaos API refuses, field by field, and where the review endpoints say no."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crucible.core.auth.bootstrap import DEV_ADMIN_EMAIL
from tests.conftest import REVIEWER
from tests.support.chaos import TEST_ALERTS, Target, wait_state
from tests.support.qa import wait_closed

pytestmark = pytest.mark.timeout(60)
BASE = "/api/v1/chaos-experiments"


def _body(target: Target, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "api checks",
        "target": target.url,
        "fault": {
            "provider": "proxy",
            "params": {
                "proxy": "web",
                "control_url": "http://127.0.0.1:9",
                "fault": {"type": "latency", "ms": 5},
            },
        },
        "duration_s": 60,
        "slos": [{"name": "up", "kind": "http", "http": {"url": f"{target.url}/health"}}],
        "preflight": {"alerts_query": TEST_ALERTS},
        "created_by": "alice",
    }
    return body | changes


def _locs(response: httpx.Response) -> dict[tuple[Any, ...], str]:
    assert response.status_code == 422, response.text
    return {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}


async def test_every_problem_is_named_at_its_field(chaos_api: httpx.AsyncClient, target: Target) -> None:
    body = _body(
        target,
        fault={"provider": "proxy", "params": {"fault": {"type": "latency", "ms": -1}, "port": 1}},
        slos=[
            {"name": "p99", "query": "histogram_quantile(0.99, rate(x[1m]", "threshold": 300},
            {"name": "p99", "kind": "process", "process": {"command": ["rm", "-rf", "/"]}},
        ],
        duration_s=5000,
        monitoring_interval_s=1,
    )
    locs = _locs(await chaos_api.post(BASE, json=body))
    assert set(locs) == {
        ("body", "fault", "params", "port"),
        ("body", "fault", "params", "proxy"),
        ("body", "fault", "params", "control_url"),
        ("body", "fault", "params", "fault", "ms"),
        ("body", "slos", 0, "query"),
        ("body", "slos", 1, "name"),
        ("body", "slos", 1, "process", "command", 0),
        ("body", "duration_s"),
    }, locs
    assert "parse error" in locs[("body", "slos", 0, "query")]
    assert "allowlist" in locs[("body", "slos", 1, "process", "command", 0)]
    assert "1000 samples" in locs[("body", "duration_s")]


async def test_shapes_are_checked_before_anything_else(chaos_api: httpx.AsyncClient, target: Target) -> None:
    locs = _locs(await chaos_api.post(BASE, json=_body(target, slos=[], fault={"provider": "chaosmonkey"})))
    assert ("body", "slos") in locs and ("body", "fault", "provider") in locs
    locs = _locs(await chaos_api.post(BASE, json=_body(target, slos=[{"name": "x", "query": "up"}])))
    assert "threshold" in locs[("body", "slos", 0)]
    window = {"window": {"start": "2026-11-22T10:00:00Z", "end": "2026-11-22T09:00:00Z"}}
    locs = _locs(await chaos_api.post(BASE, json=_body(target, schedule=window)))
    assert ("body", "schedule", "window") in locs
    locs = _locs(await chaos_api.post(BASE, json=_body(target, fault={"provider": "process", "params": {}})))
    assert ("body", "fault", "params", "match") in locs


async def test_the_review_endpoints_refuse_steps_out_of_turn(
    chaos_api: httpx.AsyncClient, target: Target, reviewer_headers: dict[str, str]
) -> None:
    created = await chaos_api.post(BASE, json=_body(target))
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    await wait_state(chaos_api, run_id, "Draft")

    early = await chaos_api.post(f"{BASE}/{run_id}/approve", json={}, headers=reviewer_headers)
    assert early.status_code == 409 and "UnderReview" in early.json()["detail"]
    submitted = await chaos_api.post(f"{BASE}/{run_id}/submit", json={"comment": "ready"})
    assert submitted.status_code == 202 and submitted.json()["by"] == DEV_ADMIN_EMAIL
    await wait_state(chaos_api, run_id, "UnderReview")
    # Who takes a step is the signed-in user; a body cannot say otherwise.
    claimed = await chaos_api.post(f"{BASE}/{run_id}/approve", json={"by": "someone-else"})
    assert claimed.status_code == 422 and claimed.json()["detail"][0]["loc"] == ["body", "by"]
    own = await chaos_api.post(f"{BASE}/{run_id}/approve", json={})
    assert own.status_code == 403 and DEV_ADMIN_EMAIL in own.json()["detail"]
    back = await chaos_api.post(
        f"{BASE}/{run_id}/request-changes", json={"comment": "shorter"}, headers=reviewer_headers
    )
    assert back.status_code == 202 and back.json()["by"] == REVIEWER
    await wait_state(chaos_api, run_id, "ChangesRequested")

    assert (await chaos_api.post(f"{BASE}/{run_id}/abort", json={})).status_code == 202
    run = await wait_closed(chaos_api, run_id)
    assert run["state"] == "Aborted" and run["verdict"] is None and run["summary"]["fault"] == "none"
    gone = await chaos_api.post(f"{BASE}/{run_id}/submit", json={})
    assert gone.status_code == 409

    assert (await chaos_api.get(f"{BASE}/qa-0000")).status_code == 404
    assert (await chaos_api.post(f"{BASE}/qa-0000/abort", json={})).status_code == 404
