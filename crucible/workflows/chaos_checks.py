"""What a chaos experiment measures, as workflow code: its SLO samples, its steady probes, and
the pre-flight checks that need no SLO (firing alerts, a recent deployment)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from crucible.activities.chaos import MEASURE_ATTEMPTS, ChaosActivities
    from crucible.activities.steady_probes import SteadyProbeActivities, SteadyProbesInput
    from crucible.core.chaos.model import (
        AlertsInput,
        ExperimentInput,
        ExperimentSpec,
        MeasureSlosInput,
        PreflightChecks,
        SloMeasurement,
    )
    from crucible.core.events import EventType
    from crucible.workflows.chaos_faults import CALL_TIMEOUT, preflight_http_check
    from crucible.workflows.events import RunEventLog

MEASURE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=MEASURE_ATTEMPTS)
ALERTS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)

#: Runs started since then end CANCELLED when their cancellation reaches an SLO measurement
#: or an alerts check in flight; before, the check took the cancelled activity for a failed
#: one, and the run went on.
CANCELS_REACH_CHECKS = "chaos-cancels-reach-checks"
#: The steady probes run until the experiment ends; this bounds them if it never does.
PROBES_MARGIN = timedelta(hours=1)


def _cancelled(exc: ActivityError) -> bool:
    """Whether ``exc`` is the run's own cancellation, not the activity failing."""
    return is_cancelled_exception(exc) and workflow.patched(CANCELS_REACH_CHECKS)


class SloSampler:
    """Samples every SLO of an experiment, numbering samples per phase, and keeps what it saw."""

    def __init__(self, log: RunEventLog, spec: ExperimentSpec) -> None:
        self.log = log
        self.spec = spec
        self.samples: dict[str, int] = {}
        self.measurements: list[SloMeasurement] = []

    async def measure(self, phase: str) -> list[SloMeasurement]:
        """One sample of every SLO, recorded as ``SLO_MEASURED``; what cannot be measured is not met."""
        slos = self.spec.slos
        sample = self.samples[phase] = self.samples.get(phase, 0) + 1
        try:
            measured = await workflow.execute_activity_method(
                ChaosActivities.measure_slos,
                MeasureSlosInput(self.log.run.run_id, slos, phase, sample),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=MEASURE_RETRY,
            )
        except ActivityError as exc:
            if _cancelled(exc):
                raise
            at = workflow.now().timestamp()
            measured = [SloMeasurement(s.name, phase, at, None, False, str(exc.cause or exc)) for s in slos]
        self.measurements.extend(measured)
        shown = [{"slo": m.slo, "value": m.value, "met": m.met, "note": m.note} for m in measured]
        self.log.emit(EventType.SLO_MEASURED, {"phase": phase, "sample": sample, "slos": shown})
        await self.log.flush()
        return measured

    def latest(self) -> dict[str, Any]:
        """The last value of each SLO, for the progress query."""
        return {m.slo: {"value": m.value, "met": m.met, "phase": m.phase} for m in self.measurements[-20:]}


class SteadyProbes:
    """The experiment's steady probes: one activity that runs until it is cancelled."""

    def __init__(self, log: RunEventLog, request: ExperimentInput) -> None:
        self.log = log
        self.request = request
        self._task: asyncio.Task[Any] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start them, unless they run already or there are none."""
        spec = self.request.spec
        if self._task is not None or not spec.steady_probes:
            return
        budget = (
            spec.preflight.warmup_s
            + spec.preflight.retries * spec.preflight.retry_interval_s
            + spec.baseline_window_s
            + spec.duration_s
            + spec.recovery_timeout_s
        )
        self._task = asyncio.ensure_future(
            workflow.execute_activity_method(
                SteadyProbeActivities.run_steady_probes,
                SteadyProbesInput(self.log.run.run_id, spec.steady_probes),
                start_to_close_timeout=timedelta(seconds=budget) + PROBES_MARGIN,
                heartbeat_timeout=timedelta(seconds=self.request.heartbeat_timeout_s),
                cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
            )
        )

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


async def blocking_conditions(run_id: str, checks: PreflightChecks) -> tuple[list[str], dict[str, Any]]:
    """Why the pre-flight blocks, before any SLO is judged (firing alerts, a recent deployment),
    and what the checks saw."""
    reasons: list[str] = []
    report: dict[str, Any] = {}
    if checks.alerts_query:
        try:
            firing = await workflow.execute_activity_method(
                ChaosActivities.firing_alerts,
                AlertsInput(checks.alerts_query),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=ALERTS_RETRY,
            )
        except ActivityError as exc:  # alerts nobody can see may be firing
            if _cancelled(exc):
                raise
            reasons.append(f"the alerts could not be checked: {exc.cause or exc}")
            report["alerts"] = []
        else:
            report["alerts"] = firing.alerts[:20]
            if firing.alerts:
                names = sorted({a.get("alertname", "?") for a in firing.alerts})
                reasons.append(f"alerts are firing: {', '.join(names)}")
    if checks.deployment_check is not None:
        outcome = await preflight_http_check(run_id, checks.deployment_check)
        report["deployment_check"] = outcome
        if not outcome["ok"]:
            reasons.append(f"the deployment check failed: {outcome['detail']}")
    return reasons, report
