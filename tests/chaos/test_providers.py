"""The process and kubernetes providers through the whole experiment: the fault is injected, the
SLOs hold, and the rollback puts things back (a killed process runs again; the pods are Ready)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crucible.core.chaos.processes import find_victims
from crucible.core.store import RunStore
from tests.support.chaos import TEST_ALERTS, VICTIM_MARKER, Cluster, Target, approve, events_of
from tests.support.qa import wait_closed

pytestmark = pytest.mark.timeout(90)


def _experiment(target: Target, fault: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"{fault['provider']} fault",
        "target": target.url,
        "fault": fault,
        "duration_s": 2,
        "monitoring_interval_s": 0.5,
        "baseline_window_s": 0.5,
        "recovery_timeout_s": 20,
        "slos": [{"name": "health", "kind": "http", "http": {"url": f"{target.url}/health"}}],
        "preflight": {"alerts_query": TEST_ALERTS, "warmup_s": 0},
        "created_by": "alice",
    }


def _victims() -> list[int]:
    return [view.pid for view, _ in find_victims(VICTIM_MARKER, [VICTIM_MARKER])]


@pytest.fixture
async def victim(tmp_path: Path) -> AsyncIterator[int]:
    """A harmless process whose command line carries the marker process faults may touch."""
    script = tmp_path / f"{VICTIM_MARKER}.py"
    script.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), cwd=tmp_path)
    yield process.pid
    for pid in _victims():
        os.kill(pid, signal.SIGKILL)
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_a_killed_process_runs_again_after_the_rollback(
    chaos_api: httpx.AsyncClient,
    target: Target,
    store: RunStore,
    victim: int,
    reviewer_headers: dict[str, str],
) -> None:
    fault = {"provider": "process", "params": {"match": VICTIM_MARKER, "signal": "SIGKILL"}}
    created = await chaos_api.post("/api/v1/chaos-experiments", json=_experiment(target, fault))
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    await approve(chaos_api, run_id, reviewer_headers)
    run = await wait_closed(chaos_api, run_id)
    assert run["verdict"] == "HypothesisConfirmed", run

    events = await events_of(store, run_id)
    [injected] = [e.data for e in events if e.type == "FAULT_INJECTED"]
    assert [p["pid"] for p in injected["processes"]["processes"]] == [victim]
    [rolled_back] = [e.data for e in events if e.type == "FAULT_ROLLED_BACK"]
    [restored] = rolled_back["processes"]["processes"]
    assert rolled_back["ok"] and restored["action"] == "restarted" and restored["new_pid"] != victim
    running = _victims()
    assert restored["new_pid"] in running and victim not in running


async def test_deleted_pods_are_replaced_before_the_experiment_ends(
    chaos_api: httpx.AsyncClient,
    target: Target,
    store: RunStore,
    cluster: Cluster,
    reviewer_headers: dict[str, str],
) -> None:
    before = cluster.api.live()
    fault = {"provider": "kubernetes", "params": {"label_selector": "app=web", "count": 1}}
    created = await chaos_api.post("/api/v1/chaos-experiments", json=_experiment(target, fault))
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    await approve(chaos_api, run_id, reviewer_headers)
    run = await wait_closed(chaos_api, run_id)
    assert run["verdict"] == "HypothesisConfirmed", run

    events = await events_of(store, run_id)
    [injected] = [e.data for e in events if e.type == "FAULT_INJECTED"]
    assert injected["pods"]["deleted"] == before[:1] and injected["pods"]["replicas_before"] == 3
    [rolled_back] = [e.data for e in events if e.type == "FAULT_ROLLED_BACK"]
    assert rolled_back["ok"] and rolled_back["pods"]["ready"] >= 3
    after = cluster.api.live()
    assert len(after) == 3 and before[0] not in after
