"""A worker killed with SIGKILL while an experiment's fault is in place: a new worker carries the
experiment on, and the fault is rolled back; nothing is left on the proxy when the run ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from crucible.api.chaos_models import ExperimentCreate
from crucible.api.chaos_spec import experiment_spec
from crucible.core.chaos.model import ExperimentInput
from crucible.core.chaos.store import ChaosStore
from crucible.core.config import Settings
from crucible.core.runs import new_run_id
from crucible.core.store import RunStore
from crucible.core.temporal import start_run
from crucible.stack.services import free_port
from crucible.workflows.chaos_experiment import KIND, ChaosExperimentWorkflow
from tests.support.chaos import (
    CHAOS_COMMANDS,
    ChaosProxyProcess,
    Target,
    events_of,
    latency_experiment,
    states,
)
from tests.support.dev import Child
from tests.support.prometheus import PrometheusServer
from tests.test_durability import start_worker, worker_env

pytestmark = pytest.mark.timeout(150)


async def test_a_fault_in_place_when_the_worker_dies_is_still_rolled_back(
    chaos_settings: Settings,
    client: Client,
    store: RunStore,
    http: httpx.AsyncClient,
    chaos_proxy: ChaosProxyProcess,
    target: Target,
    prometheus: PrometheusServer,
    task_queue: str,
    tmp_path: Path,
) -> None:
    probes_port = free_port()
    env = worker_env(chaos_settings, task_queue, tmp_path / "home")
    assert chaos_settings.secrets_key is not None and chaos_settings.prometheus_url is not None
    env.update(
        CRUCIBLE_SECRETS_KEY=chaos_settings.secrets_key.get_secret_value(),
        CRUCIBLE_PROMETHEUS_URL=chaos_settings.prometheus_url,
        CRUCIBLE_PROBE_METRICS_PORT=str(probes_port),
        CRUCIBLE_CHAOS_COMMANDS=CHAOS_COMMANDS,
    )
    name, listen = await chaos_proxy.proxy_to(target.port)
    body = latency_experiment(chaos_proxy, name, listen, slo_ms=5000, duration_s=8)
    body["slos"][0]["no_data"] = "ok"  # the probes pause with their worker
    spec = await experiment_spec(ExperimentCreate.model_validate(body), chaos_settings, http)
    run_id = new_run_id(KIND)
    await ChaosStore(store.engine).save_experiment(run_id, spec)

    first = await start_worker(env, "worker", module="crucible")
    second: Child | None = None
    try:
        await prometheus.add_target("crucible-probes-crash", f"127.0.0.1:{probes_port}")
        handle = await start_run(
            client,
            ChaosExperimentWorkflow.run,
            ExperimentInput(spec, auto_approve=True, heartbeat_timeout_s=2),
            kind=KIND,
            task_queue=task_queue,
            run_id=run_id,
        )
        async with asyncio.timeout(60):
            while not any(e.type == "FAULT_INJECTED" for e in await events_of(store, run_id)):
                await asyncio.sleep(0.1)
        assert await chaos_proxy.faults(name) == [run_id]
        await first.kill()  # SIGKILL with the fault in place
        await asyncio.sleep(1)
        assert await chaos_proxy.faults(name) == [run_id], "the fault outlives the worker"
        second = await start_worker(env, "worker", module="crucible")
        result = await asyncio.wait_for(handle.result(), 90)
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    assert await chaos_proxy.faults(name) == [], "no fault is left in place"
    assert result.verdict in ("HypothesisConfirmed", "HypothesisRejected"), result
    events = await events_of(store, run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    [rolled_back] = [e.data for e in events if e.type == "FAULT_ROLLED_BACK"]
    assert rolled_back["ok"] is True
    assert "Recovery" in states(events) and events[-1].type == "COMPLETE"
