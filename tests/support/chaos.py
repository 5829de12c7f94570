"""Chaos experiments in tests: the chaos proxy as a process, experiment bodies, and waiting."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from crucible.chaos_proxy.__main__ import READY_PREFIX
from crucible.core.store import RunStore, fetch_all_events
from tests.support.kube_api import KubeApi

#: What experiments in tests may run as process actions and checks.
CHAOS_COMMANDS = "true,false,sleep,echo"
#: The p90 latency of an experiment's steady probes, in ms, as an SLO query. Not the p99: the
#: probes share the test process's event loop with the API and the worker, and on a loaded CI
#: machine one request in fifty can be held up there, which is not what the fault does.
P90_MS = (
    "histogram_quantile(0.9, sum by (le) "
    '(rate(crucible_probe_request_duration_seconds_bucket{experiment="$experiment"}[5s]))) * 1000'
)
#: The command-line marker of processes that process faults in tests may signal.
VICTIM_MARKER = "crucible-chaos-victim"
KUBE_TOKEN = "chaos-test-token"
#: Only the test alarm blocks experiments in tests; other tests' alerts do not.
TEST_ALERTS = 'ALERTS{alertstate="firing",alertname="CrucibleTestAlarm"}'


@dataclass(frozen=True)
class Cluster:
    """A test server speaking the Kubernetes API, and a kubeconfig that reaches it."""

    api: KubeApi
    kubeconfig: Path


@dataclass(frozen=True)
class Target:
    """A target service on loopback."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ChaosProxyProcess:
    url: str
    process: asyncio.subprocess.Process
    control: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.control = httpx.AsyncClient(base_url=self.url, timeout=10)

    @classmethod
    async def start(cls) -> ChaosProxyProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crucible.chaos_proxy",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        assert line.startswith(READY_PREFIX), line
        return cls(line.removeprefix(READY_PREFIX).strip(), process)

    async def proxy_to(self, upstream_port: int) -> tuple[str, str]:
        """A new proxy in front of ``127.0.0.1:upstream_port``: its name and listen address."""
        name = f"t-{uuid.uuid4().hex[:8]}"
        created = await self.control.post(
            "/proxies", json={"name": name, "upstream": f"127.0.0.1:{upstream_port}"}
        )
        created.raise_for_status()
        return name, str(created.json()["listen"])

    async def faults(self, name: str) -> list[str]:
        """The names of the faults in place on proxy ``name``."""
        found = await self.control.get(f"/proxies/{name}")
        found.raise_for_status()
        return sorted(found.json()["faults"])

    async def stop(self) -> None:
        await self.control.aclose()
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


def latency_experiment(
    proxy: ChaosProxyProcess, name: str, listen: str, *, slo_ms: float, duration_s: float = 6
) -> dict[str, Any]:
    """A 200 ms proxy latency fault, probes at 10/s through the proxy, and a p90 latency SLO."""
    return {
        "name": f"latency with a {slo_ms:g} ms SLO",
        "target": f"http://{listen}",
        "fault": {
            "provider": "proxy",
            "params": {"proxy": name, "control_url": proxy.url, "fault": {"type": "latency", "ms": 200}},
        },
        "duration_s": duration_s,
        "monitoring_interval_s": 1,
        "baseline_window_s": 2,
        "recovery_timeout_s": 30,
        "steady_probes": [
            {"name": "health", "url": f"http://{listen}/health", "rate_per_s": 10, "timeout_s": 3}
        ],
        "slos": [{"name": "p90_latency", "query": P90_MS, "op": "<", "threshold": slo_ms, "unit": "ms"}],
        "preflight": {"alerts_query": TEST_ALERTS, "warmup_s": 4},
        "created_by": "alice",
    }


async def approve(api: httpx.AsyncClient, run_id: str, reviewer: dict[str, str]) -> None:
    """Submit as ``api``'s user, approve as ``reviewer`` (the submitter may not approve)."""
    base = f"/api/v1/chaos-experiments/{run_id}"
    await wait_state(api, run_id, "Draft")
    assert (await api.post(f"{base}/submit", json={})).status_code == 202
    await wait_state(api, run_id, "UnderReview")
    refused = await api.post(f"{base}/approve", json={})
    assert refused.status_code == 403, refused.text
    approved = await api.post(f"{base}/approve", json={"comment": "go"}, headers=reviewer)
    assert approved.status_code == 202, approved.text


async def wait_state(api: httpx.AsyncClient, run_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
    run: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                run = (await api.get(f"/api/v1/runs/{run_id}")).json()
                if run.get("state") == state or (run.get("progress") or {}).get("state") == state:
                    return run
                await asyncio.sleep(0.1)
    except TimeoutError:
        events = (await api.get(f"/api/v1/runs/{run_id}/events")).json()
        raise AssertionError(f"{run_id} never reached {state}: {run}\n{events}") from None


async def events_of(store: RunStore, run_id: str) -> list[Any]:
    return list(await fetch_all_events(store, run_id))


def states(events: list[Any]) -> list[str]:
    return [e.data["to"] for e in events if e.type == "STATE_CHANGED"]


async def timed_get(url: str) -> float:
    """Seconds one GET takes."""
    async with httpx.AsyncClient(timeout=10) as client:
        started = time.perf_counter()
        (await client.get(url)).raise_for_status()
        return time.perf_counter() - started
