"""Every path of the chaos experiment's state machine, with Prometheus, the chaos proxy and the
steady probes faked by name (see `tests.support.chaos_history`) on the session's dev server.

Samples are 0.5 s apart, but the dev server fires timers up to a second late: an experiment
that runs to its verdict takes one to three seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Worker

from crucible.core.chaos.model import (
    BASELINE,
    CHAOS,
    PREFLIGHT,
    RECOVERY,
    ExperimentResult,
    PreflightChecks,
    ReviewSignal,
    ScheduleSpec,
)
from crucible.core.events import RecordEventsInput, RecordEventsResult, RunEvent
from crucible.core.runs import RunSnapshot
from crucible.workflows.chaos_experiment import ChaosExperimentWorkflow
from tests.support.chaos_history import ChaosFakes, experiment, review, run_input, start_experiment

pytestmark = pytest.mark.timeout(30)

#: From approval to the fault: the states of every run that gets that far.
TO_MONITORING = ["Approved", "PreFlightCheck", "ReadyToRun", "Running", "Monitoring"]
CONFIRMED = [*TO_MONITORING, "Completed", "Recovery", "Validated", "AnalyzingResults", "HypothesisConfirmed"]
#: From the fault to the verdict of an aborted run, verdict excluded.
ABORTED = [*TO_MONITORING, "Aborted", "Recovery", "Validated", "AnalyzingResults"]


class Sink:
    """Stands in for the event sink: the run's events by number, and its latest row."""

    def __init__(self) -> None:
        self.by_seq: dict[int, RunEvent] = {}
        self.run: RunSnapshot | None = None

    @activity.defn(name="record_events")
    async def record_events(self, batch: RecordEventsInput) -> RecordEventsResult:
        self.by_seq.update((e.seq, e) for e in batch.events)
        self.run = batch.run
        return RecordEventsResult(written=len(batch.events))

    @property
    def events(self) -> list[RunEvent]:
        return [self.by_seq[seq] for seq in sorted(self.by_seq)]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == event_type]

    def states(self) -> list[str]:
        return [data["to"] for data in self.of("STATE_CHANGED")]

    def entered(self, state: str) -> dict[str, Any]:
        """The ``STATE_CHANGED`` data of the (last) move into ``state``."""
        return [data for data in self.of("STATE_CHANGED") if data["to"] == state][-1]

    def entered_at(self, state: str) -> datetime:
        return [e.at for e in self.events if e.type == "STATE_CHANGED" and e.data["to"] == state][-1]


@pytest.fixture
def sink() -> Sink:
    return Sink()


#: Runs an auto-approved ``experiment(**changes)`` with ``fakes`` to its end: its result.
RunToEnd = Callable[..., Awaitable[ExperimentResult]]


@pytest.fixture
def run_to_end(client: Client, task_queue: str, sink: Sink) -> RunToEnd:
    async def run(fakes: ChaosFakes, **changes: Any) -> ExperimentResult:
        async with worker(client, task_queue, sink, fakes):
            handle = await start_experiment(client, task_queue, run_input(experiment(**changes)))
            result: ExperimentResult = await handle.result()
            return result

    return run


@contextlib.asynccontextmanager
async def worker(client: Client, task_queue: str, sink: Sink, fakes: ChaosFakes) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ChaosExperimentWorkflow],
        activities=[sink.record_events, *fakes.activities()],
    ):
        yield


async def until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def assert_rolled_back_once(fakes: ChaosFakes, sink: Sink, *, ok: bool = True) -> None:
    assert fakes.count("inject") == 1 and fakes.count("rollback") == 1, fakes.calls
    assert fakes.calls.index("inject") < fakes.calls.index("rollback")
    [rolled_back] = sink.of("FAULT_ROLLED_BACK")
    assert rolled_back["ok"] is ok, rolled_back


def assert_nothing_injected(fakes: ChaosFakes, sink: Sink) -> None:
    assert "inject" not in fakes.calls and "rollback" not in fakes.calls, fakes.calls
    assert sink.of("FAULT_INJECTED") == [] and sink.of("FAULT_ROLLED_BACK") == []


# Review -----------------------------------------------------------------------------------


async def test_a_reviewed_experiment_runs_once_someone_other_than_its_submitter_approves(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes()
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment(), auto_approve=False))
        steps = [
            ("approve", "bob"),  # in Draft: nothing to approve yet
            ("submit", "alice"),
            ("request_changes", "bob"),
            ("submit", "alice"),
            ("approve", ""),
            ("approve", "alice"),  # her own submission
        ]
        await review(handle, *steps)
        await until(lambda: len(sink.of("SIGNAL_IGNORED")) == 3)
        assert sink.states()[-1] == "UnderReview" and "inject" not in fakes.calls
        progress = await handle.query(ChaosExperimentWorkflow.progress)
        assert (progress["state"], progress["submitted_by"]) == ("UnderReview", "alice")

        await review(handle, ("approve", "bob"))
        result = await handle.result()

    assert (result.state, result.verdict, result.reason) == (
        "HypothesisConfirmed",
        "HypothesisConfirmed",
        None,
    )
    assert sink.states() == ["UnderReview", "ChangesRequested", "Draft", "UnderReview", *CONFIRMED]
    ignored = [(i["signal"], i["by"], i["reason"]) for i in sink.of("SIGNAL_IGNORED")]
    assert ignored == [
        ("approve", "bob", "approve does not apply in Draft"),
        ("approve", "", "an approval must say who approves"),
        ("approve", "alice", "alice submitted the experiment and may not approve it"),
    ]
    assert sink.entered("Approved")["by"] == "bob"
    assert sink.run is not None and sink.run.summary["approved_by"] == "bob"
    assert_rolled_back_once(fakes, sink)


async def test_auto_approval_starts_at_approved_and_confirms_the_hypothesis(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes(values={BASELINE: [80], CHAOS: [150, 250, 200], RECOVERY: [90]})
    async with worker(client, task_queue, sink, fakes):
        spec = experiment(baseline_window_s=0.5, duration_s=1.5)
        handle = await start_experiment(client, task_queue, run_input(spec))
        result = await handle.result()
        await until(lambda: "probes cancelled" in fakes.calls)

    assert sink.states() == CONFIRMED
    assert sink.entered("Approved") == {"from": "Draft", "to": "Approved", "by": "auto-approval"}
    assert result.state == result.verdict == "HypothesisConfirmed" and result.reason is None
    assert result.recovery_time_s is not None and result.recovery_time_s >= 0
    assert (fakes.samples[PREFLIGHT], fakes.samples[BASELINE], fakes.samples[RECOVERY]) == (1, 1, 1)
    assert fakes.samples[CHAOS] >= 2
    [row] = result.results
    assert (row.slo, row.baseline, row.chaos, row.recovery, row.chaos_met) == ("p99_ms", 80, 250, 90, True)
    [recorded] = fakes.results
    assert recorded.results == result.results and recorded.run_id == handle.id
    assert fakes.calls == [
        "alerts",
        "deployment check",
        "probes started",
        "inject",
        "rollback",
        "probes cancelled",
    ]
    assert_rolled_back_once(fakes, sink)
    assert sink.events[0].type == "REQUESTED" and sink.events[-1].type == "COMPLETE"


# Aborts and cancellation --------------------------------------------------------------------


async def test_a_manual_abort_during_monitoring_rolls_back_measures_recovery_and_is_inconclusive(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes()
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment(duration_s=30)))
        await fakes.sampled(CHAOS)
        await handle.signal(ChaosExperimentWorkflow.abort, ReviewSignal("carol", "checkout alarms"))
        result = await handle.result()

    assert sink.states() == [*ABORTED, "Inconclusive"]
    assert sink.entered("Aborted") == {
        "from": "Monitoring",
        "to": "Aborted",
        "reason": "manual",
        "by": "carol",
        "comment": "checkout alarms",
    }
    assert (result.state, result.verdict, result.reason) == ("Inconclusive", "Inconclusive", "manual")
    assert result.recovery_time_s is not None
    assert fakes.samples[CHAOS] <= 2, "the abort does not wait for the 30 s to pass"
    assert_rolled_back_once(fakes, sink)


async def test_an_abort_during_review_ends_the_run_before_anything_is_injected(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes()
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment(), auto_approve=False))
        await review(handle, ("submit", "alice"))
        await until(lambda: sink.states() == ["UnderReview"])
        await handle.signal(ChaosExperimentWorkflow.abort, ReviewSignal("bob", "not this week"))
        result = await handle.result()

    assert (result.state, result.verdict, result.reason) == ("Aborted", None, "aborted during review")
    assert sink.states() == ["UnderReview", "Aborted"]
    assert fakes.calls == [] and fakes.samples == {}
    assert_nothing_injected(fakes, sink)


async def test_an_abort_while_scheduled_ends_the_run_before_its_preflight(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes()
    later = ScheduleSpec(start_at=time.time() + 30)
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment(schedule=later)))
        await until(lambda: "Scheduled" in sink.states())
        await handle.signal(ChaosExperimentWorkflow.abort, ReviewSignal("bob"))
        result = await handle.result()

    assert (result.state, result.reason) == ("Aborted", "aborted before the fault was injected")
    assert sink.states() == ["Approved", "Scheduled", "Aborted"]
    assert fakes.calls == [], "no pre-flight checks, no steady probes"
    assert_nothing_injected(fakes, sink)


async def test_an_abort_after_monitoring_is_refused_and_keeps_the_verdict(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes(values={RECOVERY: [450, 100]})
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment()))
        await fakes.sampled(RECOVERY)
        await handle.signal(ChaosExperimentWorkflow.abort, ReviewSignal("carol"))
        result = await handle.result()

    assert (result.state, result.verdict) == ("HypothesisConfirmed", "HypothesisConfirmed")
    assert result.recovery_time_s is not None and result.recovery_time_s >= 0.4
    assert sink.states() == CONFIRMED
    [ignored] = sink.of("SIGNAL_IGNORED")
    assert ignored == {
        "signal": "abort",
        "by": "carol",
        "comment": "",
        "reason": "abort does not apply in Recovery: the chaos phase is over",
    }
    assert sink.run is not None and sink.run.summary["abort_reason"] is None
    assert_rolled_back_once(fakes, sink)


@pytest.mark.parametrize("held", [None, CHAOS], ids=["between-measurements", "during-a-measurement"])
async def test_a_cancelled_run_still_rolls_its_fault_back(
    client: Client, task_queue: str, sink: Sink, held: str | None
) -> None:
    """Also when the cancellation reaches an SLO measurement in flight: the run ends CANCELLED,
    and does not take the cancelled measurement for an SLO it could not measure."""
    fakes = ChaosFakes(held=held)
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment(duration_s=30)))
        await fakes.sampled(CHAOS)  # held: the measurement has started and not answered
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = (await handle.describe()).status

    assert isinstance(failure.value.cause, CancelledError)
    assert status == WorkflowExecutionStatus.CANCELED
    assert sink.states() == TO_MONITORING
    assert_rolled_back_once(fakes, sink)
    assert [e.type for e in sink.events][-2:] == ["FAULT_ROLLED_BACK", "CANCELLED"]
    if held:
        assert not [e for e in sink.events if e.type == "SLO_MEASURED" and e.data.get("phase") == CHAOS]


# SLOs, rollback and recovery --------------------------------------------------------------------


async def test_an_slo_breach_aborts_and_rejects_the_hypothesis(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes(values={CHAOS: [120, 450]})
    result = await run_to_end(fakes, duration_s=30)

    assert sink.states() == [*ABORTED, "HypothesisRejected"]
    assert sink.entered("Aborted")["reason"] == "slo_breach" and sink.entered("Aborted")["slos"] == "p99_ms"
    assert (result.state, result.verdict, result.reason) == (
        "HypothesisRejected",
        "HypothesisRejected",
        "slo_breach",
    )
    assert fakes.samples[CHAOS] == 2, "aborted at the first breaching sample"
    [row] = result.results
    assert (row.chaos, row.chaos_met, row.recovery) == (450, False, 100)
    assert_rolled_back_once(fakes, sink)


async def test_a_failed_rollback_escalates(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes(rollback_fails=True)
    result = await run_to_end(fakes)

    assert sink.states() == [*TO_MONITORING, "Completed", "Recovery", "Escalated"]
    assert (result.state, result.verdict) == ("Escalated", "HypothesisRejected")
    assert result.reason == "rollback_failed: ProxyUnavailable: chaos proxy is gone", result.reason
    assert sink.entered("Escalated")["reason"] == result.reason
    assert result.recovery_time_s is None and RECOVERY not in fakes.samples
    assert_rolled_back_once(fakes, sink, ok=False)
    assert sink.run is not None and sink.run.summary["fault"] == "rollback failed"


async def test_a_recovery_that_times_out_escalates(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes(values={RECOVERY: [None]})
    result = await run_to_end(fakes, recovery_timeout_s=1)

    assert sink.states() == [*TO_MONITORING, "Completed", "Recovery", "Escalated"]
    assert (result.state, result.verdict) == ("Escalated", "HypothesisRejected")
    assert result.reason == "recovery_timeout: SLOs still not met 1 s after the rollback"
    assert result.recovery_time_s is None
    assert fakes.samples[RECOVERY] >= 2, "at once, and until 1 s after the rollback"
    recovery = [s for s in sink.of("SLO_MEASURED") if s["phase"] == RECOVERY]
    assert all(not slo["met"] and "did not answer" in slo["note"] for s in recovery for slo in s["slos"])
    assert_rolled_back_once(fakes, sink)


# Scheduling ----------------------------------------------------------------------------------


async def test_a_closed_window_postpones_the_experiment(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes()
    closed = ScheduleSpec(window_start=time.time() - 3600, window_end=time.time() - 60)
    result = await run_to_end(fakes, schedule=closed)

    assert (result.state, result.verdict) == ("Postponed", None)
    assert result.reason == "the allowed window closed before the experiment could start"
    assert sink.states() == ["Approved", "Postponed"]
    assert fakes.calls == []
    assert_nothing_injected(fakes, sink)


@pytest.mark.parametrize("window", [False, True], ids=["start_at", "window"])
async def test_a_scheduled_experiment_waits_for_its_time_then_runs(
    sink: Sink, run_to_end: RunToEnd, window: bool
) -> None:
    fakes = ChaosFakes()
    start = time.time() + 1.5
    schedule = (
        ScheduleSpec(window_start=start, window_end=start + 60) if window else ScheduleSpec(start_at=start)
    )
    result = await run_to_end(fakes, schedule=schedule)

    waiting = ["Scheduled", "WaitingForWindow"] if window else ["Scheduled"]
    assert sink.states() == [CONFIRMED[0], *waiting, *CONFIRMED[1:]]
    assert sink.entered("Scheduled")["start_at"] == start
    assert sink.entered_at("PreFlightCheck").timestamp() >= start
    assert result.verdict == "HypothesisConfirmed"
    assert_rolled_back_once(fakes, sink)


# Pre-flight and baseline ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "reason", "calls"),
    [
        (
            {"alerts": [["HighErrorRate", "DiskFull"]]},
            "alerts are firing: DiskFull, HighErrorRate",
            ["alerts", "deployment check"],
        ),
        (
            {"deployment_ok": [False]},
            "the deployment check failed: status 503",
            ["alerts", "deployment check"],
        ),
        (
            {"alerts_fail": True},
            "the alerts could not be checked: AlertsQueryInvalid: bad_data: parse error",
            ["alerts", "deployment check"],
        ),
        (
            {"values": {PREFLIGHT: [450]}},
            "SLOs are not met now: p99_ms",
            ["alerts", "deployment check", "probes started", "probes cancelled"],
        ),
    ],
    ids=["firing_alert", "deployment", "alerts_unknown", "slo_red"],
)
async def test_a_failed_preflight_blocks_the_experiment(
    client: Client, task_queue: str, sink: Sink, script: dict[str, Any], reason: str, calls: list[str]
) -> None:
    fakes = ChaosFakes(**script)
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment()))
        result = await handle.result()
        await until(lambda: fakes.calls == calls)

    assert (result.state, result.verdict, result.reason) == ("Blocked", None, reason)
    assert sink.states() == ["Approved", "PreFlightCheck", "Blocked"]
    assert sink.entered("Blocked")["reason"] == reason
    [checked] = sink.of("PREFLIGHT_CHECKED")
    assert (checked["ok"], checked["reason"]) == (False, reason)
    assert_nothing_injected(fakes, sink)


async def test_a_blocked_preflight_is_retried_and_then_runs(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes(alerts=[["Deploying"], []])
    checks = PreflightChecks(alerts_query="ALERTS", warmup_s=0, retries=2, retry_interval_s=0.5)
    result = await run_to_end(fakes, preflight=checks)

    assert sink.states() == [
        "Approved",
        "PreFlightCheck",
        "Blocked",
        "Scheduled",
        *CONFIRMED[1:],
    ]
    assert sink.entered("Scheduled") == {
        "from": "Blocked",
        "to": "Scheduled",
        "retry_in_s": 0.5,
        "after": "alerts are firing: Deploying",
    }
    assert [c["ok"] for c in sink.of("PREFLIGHT_CHECKED")] == [False, True]
    assert result.verdict == "HypothesisConfirmed"
    assert_rolled_back_once(fakes, sink)


async def test_a_preflight_blocked_after_its_last_retry_stays_blocked(
    sink: Sink, run_to_end: RunToEnd
) -> None:
    fakes = ChaosFakes(alerts=[["Deploying"]])
    checks = PreflightChecks(alerts_query="ALERTS", warmup_s=0, retries=1, retry_interval_s=0.5)
    result = await run_to_end(fakes, preflight=checks)

    assert (result.state, result.reason) == ("Blocked", "alerts are firing: Deploying")
    assert sink.states() == [
        "Approved",
        "PreFlightCheck",
        "Blocked",
        "Scheduled",
        "PreFlightCheck",
        "Blocked",
    ]
    assert fakes.count("alerts") == 2
    assert_nothing_injected(fakes, sink)


async def test_a_baseline_breach_blocks_the_experiment(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes(values={BASELINE: [450]})
    result = await run_to_end(fakes, baseline_window_s=0.5)

    assert (result.state, result.verdict) == ("Blocked", None)
    assert result.reason == "the steady state did not hold in the baseline: p99_ms"
    assert sink.states() == ["Approved", "PreFlightCheck", "ReadyToRun", "Blocked"]
    assert_nothing_injected(fakes, sink)


async def test_steady_probes_run_without_an_slo_preflight(sink: Sink, run_to_end: RunToEnd) -> None:
    fakes = ChaosFakes()
    checks = dataclasses.replace(experiment().preflight, slos_green=False)
    result = await run_to_end(fakes, preflight=checks)

    assert result.verdict == "HypothesisConfirmed"
    assert PREFLIGHT not in fakes.samples
    assert fakes.calls[:3] == ["alerts", "deployment check", "probes started"], "the baseline's load"


# Injection failure ------------------------------------------------------------------------------


async def test_a_failed_injection_fails_the_run_and_still_rolls_back(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fakes = ChaosFakes(inject_fails=True)
    async with worker(client, task_queue, sink, fakes):
        handle = await start_experiment(client, task_queue, run_input(experiment()))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = (await handle.describe()).status

    assert status == WorkflowExecutionStatus.FAILED
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "FaultNotInjected"
    assert "chaos proxy refused the fault" in cause.message
    assert sink.states() == ["Approved", "PreFlightCheck", "ReadyToRun", "Running", "Failed"]
    assert sink.of("FAULT_INJECTED") == [], "it may be half applied: rolled back all the same"
    assert_rolled_back_once(fakes, sink)
    assert [e.type for e in sink.events][-2:] == ["FAULT_ROLLED_BACK", "FAILED"]
