"""Chaos experiments with Prometheus, the chaos proxy and the steady probes faked by name.

The workflow tests (``tests/workflows/test_chaos_experiment.py``) script the fakes per run;
``python -m tests.support.record_history chaos`` records the runs the replay tests replay.
Every SLO is ``p99_ms < 300``: a scripted value of 300 or more breaches it, and ``None``
makes the measurement fail, as it does when Prometheus stays unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crucible.activities.chaos_actions import ActionOutcome, RunActionInput
from crucible.activities.chaos_proxy import InjectProxyFaultInput, ProxyFaultResult, RollBackProxyFaultInput
from crucible.activities.steady_probes import SteadyProbesInput, SteadyProbesSummary
from crucible.core.chaos.model import (
    CHAOS,
    PROXY,
    AlertsInput,
    ExperimentInput,
    ExperimentSpec,
    FaultSpec,
    FiringAlerts,
    HttpCall,
    MeasureSlosInput,
    PreflightChecks,
    RecordResultsInput,
    ReviewSignal,
    Slo,
    SloMeasurement,
    SteadyProbe,
    compare,
)
from crucible.core.temporal import start_run
from crucible.workflows.chaos_experiment import KIND, ChaosExperimentWorkflow

SLO = Slo("p99_ms", query="p99 of the checkout probe", op="<", threshold=300, unit="ms")
#: The proxy fault every experiment here injects.
LATENCY = FaultSpec(
    PROXY, {"control_url": "http://proxy.invalid", "proxy": "shop", "fault": {"latency_ms": 200}}
)


def experiment(**changes: Any) -> ExperimentSpec:
    """A latency experiment with one chaos sample and no baseline window, unless ``changes`` say so.

    The dev server fires timers up to a second late, so each sample costs about a second.
    """
    spec = ExperimentSpec(
        name="checkout latency",
        target="http://shop.invalid",
        fault=LATENCY,
        slos=[SLO],
        duration_s=0.5,
        monitoring_interval_s=0.5,
        baseline_window_s=0,
        recovery_timeout_s=2,
        preflight=PreflightChecks(
            alerts_query='ALERTS{alertstate="firing"}',
            deployment_check=HttpCall("http://deploys.invalid/recent"),
            warmup_s=0,
            retry_interval_s=0.5,
        ),
        steady_probes=[SteadyProbe("checkout", HttpCall("http://shop.invalid/checkout"))],
        created_by="alice",
    )
    return dataclasses.replace(spec, **changes)


def run_input(spec: ExperimentSpec, *, auto_approve: bool = True) -> ExperimentInput:
    # A short heartbeat timeout, so the steady probes hear their cancellation soon.
    return ExperimentInput(spec, auto_approve=auto_approve, heartbeat_timeout_s=1)


def _nth(script: list[Any], n: int) -> Any:
    """The ``n``-th entry (from 1); the last one repeats."""
    return script[min(n, len(script)) - 1]


#: How long a held measurement takes: longer than a test waits for it, short enough for the worker's
#: shutdown to wait it out.
HELD_S = 3.0


@dataclass
class ChaosFakes:
    """The chaos activities, scripted, and what the workflow asked of them.

    ``values`` gives each phase's samples in turn (the last repeats; 100 when not given),
    ``alerts`` the alert names firing at each pre-flight, ``deployment_ok`` the deployment
    check's answer at each pre-flight.
    """

    values: dict[str, list[float | None]] = field(default_factory=dict)
    alerts: list[list[str]] = field(default_factory=lambda: [[]])
    #: An alerts query that fails, as a bad PromQL expression does.
    alerts_fail: bool = False
    deployment_ok: list[bool] = field(default_factory=lambda: [True])
    inject_fails: bool = False
    rollback_fails: bool = False
    #: A phase whose measurements take ``HELD_S`` to answer: a cancellation finds one in flight.
    held: str | None = None
    #: ``alerts``, ``deployment check``, ``probes started``, ``probes cancelled``, ``inject`` and
    #: ``rollback``, in the order the activities ran (SLO measurements are in ``samples``).
    calls: list[str] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)
    results: list[RecordResultsInput] = field(default_factory=list)
    _alert_checks: int = field(default=0, init=False)
    _deployment_checks: int = field(default=0, init=False)
    _measured: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.measure_slos,
            self.firing_alerts,
            self.record_chaos_results,
            self.run_steady_probes,
            self.inject_proxy_fault,
            self.roll_back_proxy_fault,
            self.run_chaos_action,
        ]

    def count(self, call: str) -> int:
        return self.calls.count(call)

    async def sampled(self, phase: str, sample: int = 1, *, timeout: float = 10) -> None:
        """Wait until ``phase`` has been measured ``sample`` times."""
        async with self._measured:
            await asyncio.wait_for(
                self._measured.wait_for(lambda: self.samples.get(phase, 0) >= sample), timeout
            )

    @activity.defn(name="measure_slos")
    async def measure_slos(self, request: MeasureSlosInput) -> list[SloMeasurement]:
        async with self._measured:
            self.samples[request.phase] = request.sample
            self._measured.notify_all()
        if request.phase == self.held:
            await asyncio.sleep(HELD_S)
        value = _nth(self.values.get(request.phase, [100.0]), request.sample)
        if value is None:
            raise ApplicationError(
                "Prometheus did not answer", type="PrometheusUnavailable", non_retryable=True
            )
        at = time.time()
        return [
            SloMeasurement(s.name, request.phase, at, value, compare(value, s.op, s.threshold))
            for s in request.slos
        ]

    @activity.defn(name="firing_alerts")
    async def firing_alerts(self, request: AlertsInput) -> FiringAlerts:
        self.calls.append("alerts")
        if self.alerts_fail:
            raise ApplicationError("bad_data: parse error", type="AlertsQueryInvalid", non_retryable=True)
        self._alert_checks += 1
        names = _nth(self.alerts, self._alert_checks)
        return FiringAlerts([{"alertname": name, "alertstate": "firing"} for name in names])

    @activity.defn(name="run_chaos_action")
    async def run_chaos_action(self, request: RunActionInput) -> ActionOutcome:
        self.calls.append("deployment check")
        self._deployment_checks += 1
        ok = _nth(self.deployment_ok, self._deployment_checks)
        status = 200 if ok else 503
        action = request.action
        return ActionOutcome(action.name, request.phase, action.is_probe, ok, status, 3.0, f"status {status}")

    @activity.defn(name="run_steady_probes")
    async def run_steady_probes(self, request: SteadyProbesInput) -> SteadyProbesSummary:
        self.calls.append("probes started")
        try:
            while True:  # a cancellation arrives with a heartbeat's answer
                activity.heartbeat()
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self.calls.append("probes cancelled")
            raise

    @activity.defn(name="inject_proxy_fault")
    async def inject_proxy_fault(self, request: InjectProxyFaultInput) -> ProxyFaultResult:
        self.calls.append("inject")
        if self.inject_fails:  # after the proxy may have taken part of it
            raise ApplicationError(
                "chaos proxy refused the fault", type="ProxyFaultInvalid", non_retryable=True
            )
        return ProxyFaultResult(request.proxy, request.fault_name, in_place=True)

    @activity.defn(name="roll_back_proxy_fault")
    async def roll_back_proxy_fault(self, request: RollBackProxyFaultInput) -> ProxyFaultResult:
        self.calls.append("rollback")
        if self.rollback_fails:
            raise ApplicationError("chaos proxy is gone", type="ProxyUnavailable", non_retryable=True)
        return ProxyFaultResult(request.proxy, request.fault_name, in_place=False)

    @activity.defn(name="record_chaos_results")
    async def record_chaos_results(self, request: RecordResultsInput) -> None:
        self.results.append(request)


async def start_experiment(
    client: Client, task_queue: str, request: ExperimentInput
) -> WorkflowHandle[Any, Any]:
    return await start_run(client, ChaosExperimentWorkflow.run, request, kind=KIND, task_queue=task_queue)


async def review(handle: WorkflowHandle[Any, Any], *steps: tuple[str, str]) -> None:
    """Send review signals in order: ``("submit", "alice")``, ``("approve", "bob")``…"""
    for name, by in steps:
        await handle.signal(name, ReviewSignal(by, f"{name} by {by or 'nobody'}"))


#: The review of the recorded confirmed run: changes requested, and alice's own approval refused.
REVIEW = [
    ("approve", "bob"),
    ("submit", "alice"),
    ("request_changes", "bob"),
    ("submit", "alice"),
    ("approve", "alice"),
    ("approve", "bob"),
]


async def record_chaos(env: WorkflowEnvironment, histories: Path, record_events: Callable[..., Any]) -> None:
    runs: dict[str, tuple[ChaosFakes, ExperimentInput]] = {
        "chaos_confirmed": (
            ChaosFakes(),
            run_input(experiment(baseline_window_s=0.5, duration_s=1), auto_approve=False),
        ),
        "chaos_breached": (ChaosFakes(values={CHAOS: [120, 450]}), run_input(experiment(duration_s=30))),
        "chaos_blocked": (ChaosFakes(alerts=[["HighErrorRate"]]), run_input(experiment())),
        "chaos_cancelled": (ChaosFakes(), run_input(experiment(duration_s=30))),
    }
    for name, (fakes, request) in runs.items():
        async with Worker(
            env.client,
            task_queue="record",
            workflows=[ChaosExperimentWorkflow],
            activities=[record_events, *fakes.activities()],
        ):
            handle = await start_experiment(env.client, "record", request)
            if name == "chaos_confirmed":
                await review(handle, *REVIEW)
            elif name == "chaos_cancelled":
                await fakes.sampled(CHAOS)
                await handle.cancel()
            with contextlib.suppress(Exception):
                await handle.result()
            (histories / f"{name}.json").write_text((await handle.fetch_history()).to_json())
