"""Chaos experiments end to end, as a user runs them: a real Prometheus scraping the steady probes
and the target, a chaos proxy process in front of the target, the API, the worker."""

from __future__ import annotations

import httpx
import pytest

from crucible.core.store import RunStore
from tests.support.chaos import (
    ChaosProxyProcess,
    Target,
    approve,
    events_of,
    latency_experiment,
    states,
    timed_get,
    wait_state,
)
from tests.support.prometheus import PrometheusServer
from tests.support.qa import wait_closed

pytestmark = pytest.mark.timeout(120)


async def _create(api: httpx.AsyncClient, body: dict[str, object]) -> str:
    created = await api.post("/api/v1/chaos-experiments", json=body)
    assert created.status_code == 202, created.text
    assert created.json()["state"] == "Draft"
    return str(created.json()["run_id"])


async def test_a_tolerated_latency_fault_confirms_the_hypothesis_and_reports_a_recovery_time(
    chaos_api: httpx.AsyncClient,
    chaos_proxy: ChaosProxyProcess,
    target: Target,
    store: RunStore,
    reviewer_headers: dict[str, str],
) -> None:
    name, listen = await chaos_proxy.proxy_to(target.port)
    run_id = await _create(chaos_api, latency_experiment(chaos_proxy, name, listen, slo_ms=500))
    await approve(chaos_api, run_id, reviewer_headers)
    await wait_state(chaos_api, run_id, "Monitoring")
    assert await chaos_proxy.faults(name) == [run_id], "the fault is in place"
    assert await timed_get(f"http://{listen}/health") >= 0.2

    run = await wait_closed(chaos_api, run_id)
    events = await events_of(store, run_id)
    samples = [(e.data["phase"], e.data["slos"]) for e in events if e.type == "SLO_MEASURED"]
    assert run["status"] == "COMPLETED" and run["state"] == "HypothesisConfirmed", (run["summary"], samples)
    assert run["verdict"] == "HypothesisConfirmed"
    assert run["summary"]["recovery_time_s"] is not None and run["summary"]["recovery_time_s"] >= 0
    assert await chaos_proxy.faults(name) == []

    assert states(events) == [
        "UnderReview",
        "Approved",
        "PreFlightCheck",
        "ReadyToRun",
        "Running",
        "Monitoring",
        "Completed",
        "Recovery",
        "Validated",
        "AnalyzingResults",
        "HypothesisConfirmed",
    ]
    ignored = [e.data for e in events if e.type == "SIGNAL_IGNORED"]
    assert ignored == [], "the API refused alice's approval before it became a signal"
    chaos = [e.data for e in events if e.type == "SLO_MEASURED" and e.data["phase"] == "chaos"]
    values = [s["value"] for sample in chaos for s in sample["slos"]]
    # The first sample may come before Prometheus has scraped a slow request; the rest see them.
    assert len(values) >= 4 and all(v < 500 for v in values) and all(v >= 200 for v in values[2:]), values

    detail = (await chaos_api.get(f"/api/v1/chaos-experiments/{run_id}")).json()
    [result] = detail["results"]
    assert result["slo"] == "p90_latency" and result["chaos_met"] is True
    assert result["baseline"] < 100 <= 200 <= result["chaos"] < 500 and result["recovery"] < 500
    assert {m["phase"] for m in detail["measurements"]} == {"preflight", "baseline", "chaos", "recovery"}

    page = await chaos_api.get(f"/api/v1/runs/{run_id}/report", params={"format": "html"})
    assert page.status_code == 200 and "<svg" in page.text and "HypothesisConfirmed" in page.text
    junit = await chaos_api.get(f"/api/v1/runs/{run_id}/report", params={"format": "junit"})
    assert 'failures="0"' in junit.text


async def test_an_slo_breach_aborts_within_two_intervals_rolls_back_and_rejects(
    chaos_api: httpx.AsyncClient,
    chaos_proxy: ChaosProxyProcess,
    target: Target,
    store: RunStore,
    reviewer_headers: dict[str, str],
) -> None:
    name, listen = await chaos_proxy.proxy_to(target.port)
    body = latency_experiment(chaos_proxy, name, listen, slo_ms=100, duration_s=30)
    run_id = await _create(chaos_api, body)
    await approve(chaos_api, run_id, reviewer_headers)

    run = await wait_closed(chaos_api, run_id)
    assert run["state"] == "HypothesisRejected" and run["verdict"] == "HypothesisRejected", run
    assert run["summary"]["abort_reason"] == "slo_breach"
    assert await chaos_proxy.faults(name) == []
    assert await timed_get(f"http://{listen}/health") < 0.15, "the proxy adds no latency any more"

    events = await events_of(store, run_id)
    first_breach = next(
        e
        for e in events
        if e.type == "SLO_MEASURED" and e.data["phase"] == "chaos" and not e.data["slos"][0]["met"]
    )
    aborted = next(e for e in events if e.type == "STATE_CHANGED" and e.data["to"] == "Aborted")
    assert aborted.data["reason"] == "slo_breach" and aborted.data["slos"] == "p90_latency"
    assert (aborted.at - first_breach.at).total_seconds() <= 2 * body["monitoring_interval_s"]
    assert (aborted.at - first_breach.at).total_seconds() >= 0
    rolled_back = next(e for e in events if e.type == "FAULT_ROLLED_BACK")
    assert rolled_back.data["ok"] is True and rolled_back.seq > aborted.seq
    assert states(events)[-4:] == ["Recovery", "Validated", "AnalyzingResults", "HypothesisRejected"]


async def test_a_firing_alert_blocks_the_experiment_before_anything_is_injected(
    chaos_api: httpx.AsyncClient,
    chaos_proxy: ChaosProxyProcess,
    target: Target,
    store: RunStore,
    prometheus: PrometheusServer,
    reviewer_headers: dict[str, str],
) -> None:
    name, listen = await chaos_proxy.proxy_to(target.port)
    async with prometheus.alarm():
        run_id = await _create(chaos_api, latency_experiment(chaos_proxy, name, listen, slo_ms=500))
        await approve(chaos_api, run_id, reviewer_headers)
        run = await wait_closed(chaos_api, run_id)
    assert run["status"] == "COMPLETED" and run["state"] == "Blocked" and run["verdict"] is None, run
    assert "CrucibleTestAlarm" in run["summary"]["reason"]
    events = await events_of(store, run_id)
    assert not any(e.type in ("FAULT_INJECTED", "FAULT_ROLLED_BACK") for e in events)
    [checked] = [e.data for e in events if e.type == "PREFLIGHT_CHECKED"]
    assert checked["ok"] is False and checked["alerts"][0]["alertname"] == "CrucibleTestAlarm"
    assert await chaos_proxy.faults(name) == []
