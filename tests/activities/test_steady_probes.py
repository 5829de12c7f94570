"""Steady probes against a real HTTP target, their metrics seen by a real Prometheus."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from crucible.activities import steady_probes
from crucible.activities.steady_probes import (
    INVALID_STEADY_PROBE,
    ProbeCounts,
    SteadyProbeActivities,
    SteadyProbesInput,
    SteadyProbesSummary,
)
from crucible.core.chaos.model import HttpCall, SteadyProbe
from crucible.stack.services import free_port
from tests.support.prometheus import PrometheusServer
from tests.support.steady_probes_workflow import ProbesForAWhile, ProbesForAWhileWorkflow
from tests.support.steady_target import SteadyTarget, steady_target

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def target() -> AsyncIterator[SteadyTarget]:
    async with steady_target() as served:
        yield served


def experiment() -> str:
    return f"chaos-test-{uuid.uuid4().hex[:8]}"


def probe(name: str, url: str, rate: float, **call: object) -> SteadyProbe:
    return SteadyProbe(name, HttpCall(url, **call), rate_per_s=rate)  # type: ignore[arg-type]


async def run_for(
    http: httpx.AsyncClient,
    request: SteadyProbesInput,
    seconds: float,
    env: ActivityEnvironment | None = None,
) -> SteadyProbesSummary:
    """Run the probes, then cancel them as the workflow does."""
    env = env or ActivityEnvironment()
    running = asyncio.create_task(env.run(SteadyProbeActivities(http).run_steady_probes, request))
    await asyncio.sleep(seconds)
    env.cancel()
    summary: SteadyProbesSummary = await asyncio.wait_for(running, 5)
    return summary


async def test_open_load_at_each_rate_seen_by_prometheus(
    prometheus: PrometheusServer, probe_metrics_port: int, http: httpx.AsyncClient, target: SteadyTarget
) -> None:
    run_id = experiment()
    request = SteadyProbesInput(
        run_id,
        [probe("fast", f"{target.url}/ok", 20), probe("slow", f"{target.url}/slow?ms=200", 10)],
    )
    env = ActivityEnvironment()
    running = asyncio.create_task(env.run(SteadyProbeActivities(http).run_steady_probes, request))
    started = time.monotonic()
    by_probe = f'{{experiment="{run_id}",outcome="ok"}}'
    rates = await prometheus.wait_for(
        f"sum by (probe) (rate(crucible_probe_requests_total{by_probe}[3s])) > 0", timeout=15
    )
    p50 = await prometheus.wait_for(
        "histogram_quantile(0.5, sum by (le) (rate("
        f'crucible_probe_request_duration_seconds_bucket{{experiment="{run_id}",probe="slow"}}[3s])))'
        " > 0",
        timeout=15,
    )
    env.cancel()
    summary = await asyncio.wait_for(running, 5)
    elapsed = time.monotonic() - started

    assert {s.labels["probe"] for s in rates} == {"fast", "slow"}
    assert 0.2 <= p50[0].value <= 0.25  # the bucket that holds 200 ms
    fast, slow = summary.probes
    assert (fast.probe, fast.error, slow.probe, slow.error) == ("fast", 0, "slow", 0)
    assert 20 * elapsed * 0.6 <= fast.ok <= 20 * elapsed + 2
    # Open load: 200 ms answers do not hold back a request every 100 ms.
    assert 10 * elapsed * 0.6 - 3 <= slow.ok <= 10 * elapsed + 1
    assert fast.ok <= target.received["/ok"] <= fast.ok + 3  # the last few were cut off by the cancel
    counted = await prometheus.wait_for(
        f'sum(crucible_probe_requests_total{{experiment="{run_id}",probe="fast"}}) >= {fast.ok}'
    )
    assert counted[0].value == fast.ok


async def test_errors_are_counted_and_named(
    prometheus: PrometheusServer, probe_metrics_port: int, http: httpx.AsyncClient, target: SteadyTarget
) -> None:
    run_id = experiment()
    request = SteadyProbesInput(
        run_id,
        [
            probe("server-error", f"{target.url}/status/500", 10),
            probe("expected-500", f"{target.url}/status/500", 10, expected_status=[500]),
            probe(
                "unexpected-200", f"{target.url}/ok", 10, method="POST", body={"a": 1}, expected_status=[201]
            ),
            probe("refused", f"http://127.0.0.1:{free_port()}/", 10),
            probe("too-slow", f"{target.url}/slow?ms=2000", 10, timeout_s=0.3),
        ],
    )
    summary = await run_for(http, request, 1.5)
    counts = {p.probe: p for p in summary.probes}
    assert counts["expected-500"].error == 0 and counts["expected-500"].ok > 10
    for name in ("server-error", "unexpected-200", "refused", "too-slow"):
        assert counts[name].ok == 0 and counts[name].error > 10, counts[name]
    assert counts["server-error"].last_error == "status 500"
    assert counts["unexpected-200"].last_error == "status 200"
    assert "Connect" in counts["refused"].last_error
    assert counts["too-slow"].last_error == "no answer within 0.3 s"

    errors = await prometheus.wait_for(
        f'sum by (probe) (crucible_probe_requests_total{{experiment="{run_id}",outcome="error"}}) > 10'
    )
    assert {s.labels["probe"] for s in errors} == {"server-error", "unexpected-200", "refused", "too-slow"}
    # Every probe's error series exists from the start, so an error ratio is 0, not "no data".
    [none] = await prometheus.query(
        f'crucible_probe_requests_total{{experiment="{run_id}",probe="expected-500",outcome="error"}}'
    )
    assert none.value == 0


async def test_cancelling_stops_every_request(http: httpx.AsyncClient, target: SteadyTarget) -> None:
    request = SteadyProbesInput(experiment(), [probe("held", f"{target.url}/slow?ms=10000", 10)])
    summary = await run_for(http, request, 1)
    assert summary.probes[0].ok == summary.probes[0].error == 0
    sent = target.total()
    assert sent >= 5
    await asyncio.sleep(0.5)
    assert target.total() == sent
    assert target.open == 0  # the requests in flight were abandoned, not left hanging


async def test_open_requests_are_capped(
    http: httpx.AsyncClient, target: SteadyTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steady_probes, "MAX_IN_FLIGHT", 5)
    request = SteadyProbesInput(experiment(), [probe("held", f"{target.url}/slow?ms=10000", 20)])
    summary = await run_for(http, request, 1)
    assert target.received["/slow"] == 5
    assert summary.probes[0].error >= 5
    assert summary.probes[0].last_error == "not sent: 5 requests still open"


async def test_a_retry_carries_on_counting(http: httpx.AsyncClient, target: SteadyTarget) -> None:
    env = ActivityEnvironment()
    before = {
        "run_id": "x",
        "probes": [{"probe": "fast", "ok": 1000, "error": 7, "last_error": "status 503"}],
    }
    env.info = dataclasses.replace(env.info, heartbeat_details=[before])
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    request = SteadyProbesInput("x", [probe("fast", f"{target.url}/ok", 20)])
    summary = await run_for(http, request, 0.5, env)
    assert summary.probes[0].ok > 1000 and summary.probes[0].error == 7
    assert summary.probes[0].last_error == "status 503"
    assert beats and all(beat is summary for beat in beats)


async def test_a_cancel_the_workflow_did_not_ask_for_is_raised(
    http: httpx.AsyncClient, target: SteadyTarget
) -> None:
    env = ActivityEnvironment()
    request = SteadyProbesInput(experiment(), [probe("fast", f"{target.url}/ok", 5)])
    running = asyncio.create_task(env.run(SteadyProbeActivities(http).run_steady_probes, request))
    await asyncio.sleep(0.3)
    env.cancel(activity.ActivityCancellationDetails(worker_shutdown=True))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 5)


async def test_a_rate_of_zero_is_refused(http: httpx.AsyncClient) -> None:
    request = SteadyProbesInput(experiment(), [probe("never", "http://127.0.0.1:1/", 0)])
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(SteadyProbeActivities(http).run_steady_probes, request)
    assert refused.value.type == INVALID_STEADY_PROBE and refused.value.non_retryable


@pytest.mark.parametrize("wait_for_summary", [True, False])
async def test_the_workflow_sees_a_clean_cancel(
    client: Client, http: httpx.AsyncClient, target: SteadyTarget, task_queue: str, wait_for_summary: bool
) -> None:
    request = ProbesForAWhile(
        SteadyProbesInput(experiment(), [probe("fast", f"{target.url}/ok", 10)]),
        run_for_s=1.5,
        wait_for_summary=wait_for_summary,
    )
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ProbesForAWhileWorkflow],
        activities=[SteadyProbeActivities(http).run_steady_probes],
    ):
        started = time.monotonic()
        result = await client.execute_workflow(
            ProbesForAWhileWorkflow.run, request, id=f"probes-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        took = time.monotonic() - started
        if wait_for_summary:
            assert isinstance(result, SteadyProbesSummary)
            [counts] = result.probes
            assert counts == ProbeCounts("fast", counts.ok) and counts.ok >= 10
            assert took < 1.5 + 2.0  # the cancel arrives with a heartbeat (throttled to 0.8 of 2 s)
        else:
            assert result is None
        sent = target.total()
        await asyncio.sleep(2.0)  # with TRY_CANCEL the workflow does not wait; the probes stop soon after
        assert target.total() <= sent + (20 if not wait_for_summary else 0)
