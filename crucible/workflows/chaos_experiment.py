"""A chaos experiment, as the state machine of seed 001 §3.2 (state names kept).

``Draft`` → ``UnderReview`` → ``Approved`` (signals ``submit``, ``approve``, ``request_changes``;
or approved at once with auto-approval) → ``Scheduled``/``WaitingForWindow`` (or ``Postponed``)
→ ``PreFlightCheck`` (or ``Blocked``) → ``ReadyToRun`` (the baseline) → ``Running`` (the
injection) → ``Monitoring`` → ``Completed`` or ``Aborted`` (``slo_breach``, ``manual``) →
``Recovery`` → ``Validated`` or ``Escalated`` → ``AnalyzingResults`` → ``HypothesisConfirmed``
or ``HypothesisRejected``.

Every wait is a durable timer, so a worker that dies changes nothing but when things
happen. Once an injection has started, the rollback always runs: on completion, on abort,
on failure and on cancellation; a worker crash only delays it, since the workflow resumes
on another worker and the providers' activities are idempotent.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # The providers' modules by name too: the sandbox resolves their results' nested dataclasses
    # only through modules this module imports itself.
    import crucible.activities.chaos_actions
    import crucible.activities.chaos_kubernetes
    import crucible.activities.chaos_process  # noqa: F401
    from crucible.activities.chaos import ChaosActivities
    from crucible.core.chaos.model import (
        BASELINE,
        CHAOS,
        PREFLIGHT,
        RECOVERY,
        ExperimentInput,
        ExperimentResult,
        ExperimentSpec,
        RecordResultsInput,
        ReviewSignal,
    )
    from crucible.core.chaos.verdict import (
        CONFIRMED,
        INCONCLUSIVE,
        REJECTED,
        results_of,
        shown_spec,
    )
    from crucible.core.events import EventType
    from crucible.workflows.chaos_checks import SloSampler, SteadyProbes, blocking_conditions
    from crucible.workflows.chaos_faults import CALL_TIMEOUT, FaultDriver
    from crucible.workflows.events import RunEventLog

KIND = "chaos"

SLO_BREACH, MANUAL = "slo_breach", "manual"


@workflow.defn
class ChaosExperimentWorkflow:
    def __init__(self) -> None:
        self.log: RunEventLog | None = None
        self.submitted_by: str | None = None
        self.approved_by: str | None = None
        self._reviews: list[tuple[str, ReviewSignal]] = []
        #: Why the experiment is being aborted (``slo_breach`` or ``manual``), and the details.
        self.abort_reason: str | None = None
        self.abort_detail: dict[str, Any] = {}
        #: Set when monitoring ends: an abort has nothing left to stop, and may not change the verdict.
        self._chaos_over = False
        self._sampler: SloSampler | None = None
        self.fault: FaultDriver | None = None
        self._probes: SteadyProbes | None = None

    @property
    def sampler(self) -> SloSampler:
        assert self._sampler is not None
        return self._sampler

    @property
    def probes(self) -> SteadyProbes:
        assert self._probes is not None
        return self._probes

    # Signals -------------------------------------------------------------------------------

    @workflow.signal
    def submit(self, review: ReviewSignal) -> None:
        """Put the experiment up for review (from ``Draft`` or ``ChangesRequested``)."""
        self._queue_review("submit", review)

    @workflow.signal
    def approve(self, review: ReviewSignal) -> None:
        """Approve it (from ``UnderReview``); the approver may not be the submitter."""
        self._queue_review("approve", review)

    @workflow.signal
    def request_changes(self, review: ReviewSignal) -> None:
        """Send it back (from ``UnderReview``) to ``ChangesRequested``."""
        self._queue_review("request_changes", review)

    def _queue_review(self, name: str, review: ReviewSignal) -> None:
        if self.approved_by is None:
            self._reviews.append((name, review))
        else:
            self._ignore(name, review, "the experiment is approved already")

    def _ignore(self, name: str, review: ReviewSignal, reason: str) -> None:
        """Record a signal that changes nothing; written with the next event (a handler cannot wait)."""
        if self.log is not None and not self.log.closed:
            said = {"by": review.by, "comment": review.comment}
            self.log.emit(EventType.SIGNAL_IGNORED, {"signal": name, **said, "reason": reason})

    @workflow.signal
    def abort(self, review: ReviewSignal) -> None:
        """Stop now: roll back a fault in place, then measure the recovery (reason ``manual``)."""
        if self.abort_reason is not None:
            return
        if self._chaos_over:
            assert self.log is not None
            self._ignore(
                "abort", review, f"abort does not apply in {self.log.run.state}: the chaos phase is over"
            )
            return
        self.abort_reason, self.abort_detail = MANUAL, {"by": review.by, "comment": review.comment}

    @workflow.query
    def progress(self) -> dict[str, Any]:
        assert self.log is not None
        return {
            "state": self.log.run.state,
            "submitted_by": self.submitted_by,
            "approved_by": self.approved_by,
            "fault": self.fault.state if self.fault else None,
            "abort_reason": self.abort_reason,
            "samples": dict(self._sampler.samples) if self._sampler else {},
            "slos": self._sampler.latest() if self._sampler else {},
        }

    # The run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ExperimentInput) -> ExperimentResult:
        self.log = RunEventLog(kind=KIND)
        return await self.log.guard(lambda: self._run(request))

    async def _run(self, request: ExperimentInput) -> ExperimentResult:
        log = self.log
        assert log is not None
        spec = request.spec
        self.fault = FaultDriver(log, spec.fault)
        self._sampler = SloSampler(log, spec)
        self._probes = SteadyProbes(log, request)
        log.run.state = "Draft"
        log.run.summary = {"name": spec.name, "target": spec.target, "provider": spec.fault.provider}
        await log.record(EventType.REQUESTED, shown_spec(spec))
        try:
            if not await self._review(request):
                return await self._end("Aborted", None, "aborted during review")
            return await self._execute(request)
        finally:
            self.probes.stop()
            # Shielded inside: a cancellation does not stop a rollback, it waits for it.
            await self.fault.roll_back()

    async def _review(self, request: ExperimentInput) -> bool:
        """Wait for approval; False when aborted first."""
        log = self.log
        assert log is not None
        if request.auto_approve:
            self.approved_by = "auto-approval"
            await log.set_state("Approved", {"by": self.approved_by})
            return True
        while log.run.state != "Approved":
            await workflow.wait_condition(lambda: bool(self._reviews) or self.abort_reason is not None)
            if self.abort_reason is not None:
                return False
            name, review = self._reviews.pop(0)
            await self._apply_review(name, review, request.spec)
        for name, review in self._reviews:  # sent before the approval was applied
            self._ignore(name, review, "the experiment is approved already")
        self._reviews.clear()
        return True

    async def _apply_review(self, name: str, review: ReviewSignal, spec: ExperimentSpec) -> None:
        log = self.log
        assert log is not None
        state = log.run.state
        said = {"by": review.by, "comment": review.comment}
        refused: str | None = None
        if name == "submit" and state in ("Draft", "ChangesRequested"):
            if state == "ChangesRequested":
                await log.set_state("Draft", said)
            self.submitted_by = review.by or spec.created_by
            await log.set_state("UnderReview", said)
        elif name == "approve" and state == "UnderReview":
            if not review.by:
                refused = "an approval must say who approves"
            elif review.by == self.submitted_by:
                refused = f"{review.by} submitted the experiment and may not approve it"
            else:
                self.approved_by = review.by
                await log.set_state("Approved", said)
        elif name == "request_changes" and state == "UnderReview":
            await log.set_state("ChangesRequested", said)
        else:
            refused = f"{name} does not apply in {state}"
        if refused is not None:
            await log.record(EventType.SIGNAL_IGNORED, {"signal": name, **said, "reason": refused})

    async def _execute(self, request: ExperimentInput) -> ExperimentResult:
        log = self.log
        assert log is not None and self.fault is not None
        spec = request.spec
        missed = await self._wait_for_window(spec)
        if missed is not None:
            return await self._end("Postponed", None, missed)
        retries = spec.preflight.retries
        while self.abort_reason is None and (blocked := await self._preflight(request)) is not None:
            if retries <= 0 or self.abort_reason is not None:
                return await self._end("Blocked", None, blocked)
            retries -= 1
            await log.set_state(
                "Scheduled", {"retry_in_s": spec.preflight.retry_interval_s, "after": blocked}
            )
            await self._pause(spec.preflight.retry_interval_s)
            missed = self._window_missed(spec)
            if missed is not None:
                return await self._end("Postponed", None, missed)
        if self.abort_reason is not None:
            return await self._end("Aborted", None, "aborted before the fault was injected")
        await log.set_state("ReadyToRun")
        # Started by the pre-flight when it judges the SLOs; without that check, here.
        self.probes.start()
        baseline = await self._sample_for(BASELINE, spec, spec.baseline_window_s)
        if self.abort_reason is not None:
            return await self._end("Aborted", None, "aborted before the fault was injected")
        if baseline is not None:
            return await self._end(
                "Blocked", None, f"the steady state did not hold in the baseline: {baseline}"
            )
        await log.set_state("Running")
        try:
            await self.fault.inject()
        except ActivityError as exc:
            await log.set_state("Failed", {"reason": str(exc.cause or exc)})
            raise ApplicationError(
                f"the fault could not be injected: {exc.cause or exc}",
                type="FaultNotInjected",
                non_retryable=True,
            ) from None
        await log.set_state("Monitoring")
        breach = await self._sample_for(CHAOS, spec, spec.duration_s)
        self._chaos_over = True
        if breach is not None and self.abort_reason is None:
            self.abort_reason, self.abort_detail = SLO_BREACH, {"slos": breach}
        if self.abort_reason is None:
            await log.set_state("Completed")
        else:
            await log.set_state("Aborted", {"reason": self.abort_reason, **self.abort_detail})
        return await self._recover(spec)

    async def _recover(self, spec: ExperimentSpec) -> ExperimentResult:
        log = self.log
        assert log is not None and self.fault is not None
        failed = await self.fault.roll_back()
        escalation = None if failed is None else f"rollback_failed: {failed}"
        rolled_back_at = workflow.now().timestamp()
        await log.set_state("Recovery")
        recovery_time: float | None = None
        deadline = rolled_back_at + spec.recovery_timeout_s
        while escalation is None:
            measured = await self.sampler.measure(RECOVERY)
            if all(m.met for m in measured):
                recovery_time = round(max(max(m.at for m in measured) - rolled_back_at, 0.0), 3)
                break
            left = deadline - workflow.now().timestamp()
            if left <= 0:
                escalation = (
                    f"recovery_timeout: SLOs still not met {spec.recovery_timeout_s:g} s after the rollback"
                )
                break
            await workflow.sleep(timedelta(seconds=min(spec.monitoring_interval_s, left)))
        self.probes.stop()
        if escalation is not None:
            await log.set_state("Escalated", {"reason": escalation})
        else:
            await log.set_state("Validated", {"recovery_time_s": recovery_time})
            await log.set_state("AnalyzingResults")
        results = results_of(spec, self.sampler.measurements)
        await workflow.execute_activity_method(
            ChaosActivities.record_chaos_results,
            RecordResultsInput(log.run.run_id, results),
            start_to_close_timeout=CALL_TIMEOUT,
        )
        if self.abort_reason == MANUAL:
            verdict = INCONCLUSIVE
        elif self.abort_reason is None and escalation is None and all(r.chaos_met for r in results):
            verdict = CONFIRMED
        else:
            verdict = REJECTED
        reason = escalation or self.abort_reason
        final = "Escalated" if escalation is not None else verdict
        return await self._end(final, verdict, reason, recovery_time=recovery_time, results=results)

    # Scheduling and pre-flight -------------------------------------------------------------------

    def _window_missed(self, spec: ExperimentSpec) -> str | None:
        end = spec.schedule.window_end
        if end is not None and workflow.now().timestamp() > end:
            return "the allowed window closed before the experiment could start"
        return None

    async def _wait_for_window(self, spec: ExperimentSpec) -> str | None:
        """Wait until the experiment may start; the reason when its window was missed."""
        log = self.log
        assert log is not None
        schedule = spec.schedule
        missed = self._window_missed(spec)
        if missed is not None:
            return missed
        start = max(schedule.start_at or 0.0, schedule.window_start or 0.0)
        wait = start - workflow.now().timestamp()
        if wait > 0:
            await log.set_state("Scheduled", {"start_at": start})
            if schedule.window_start is not None:
                await log.set_state("WaitingForWindow", {"window_end": schedule.window_end})
            await self._pause(wait)
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleep on a durable timer, or until an abort."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.abort_reason is not None, timeout=timedelta(seconds=seconds)
            )

    async def _preflight(self, request: ExperimentInput) -> str | None:
        """Every pre-flight check; why the experiment is blocked, or None."""
        log = self.log
        assert log is not None
        spec = request.spec
        checks = spec.preflight
        await log.set_state("PreFlightCheck")
        reasons, report = await blocking_conditions(log.run.run_id, checks)
        if not reasons and checks.slos_green:
            self.probes.start()
            if self.probes.running and checks.warmup_s > 0:
                await self._pause(checks.warmup_s)
            measured = await self.sampler.measure(PREFLIGHT)
            red = [m.slo for m in measured if not m.met]
            if red:
                reasons.append(f"SLOs are not met now: {', '.join(red)}")
        blocked = "; ".join(reasons) or None
        await log.record(EventType.PREFLIGHT_CHECKED, {"ok": blocked is None, "reason": blocked, **report})
        if blocked is not None:
            await log.set_state("Blocked", {"reason": blocked})
        return blocked

    # Measuring -----------------------------------------------------------------------------------

    async def _sample_for(self, phase: str, spec: ExperimentSpec, seconds: float) -> str | None:
        """Measure every interval for ``seconds``; the SLOs that broke, at the first breach.

        Stops early on an abort; the first sample comes one interval in.
        """
        end = workflow.now().timestamp() + seconds
        while self.abort_reason is None:
            left = end - workflow.now().timestamp()
            if left <= 0:
                return None
            await self._pause(min(spec.monitoring_interval_s, left))
            if self.abort_reason is not None:
                return None
            red = [m.slo for m in await self.sampler.measure(phase) if not m.met]
            if red:
                return ", ".join(red)
        return None

    async def _end(
        self,
        state: str,
        verdict: str | None,
        reason: str | None,
        *,
        recovery_time: float | None = None,
        results: list[Any] | None = None,
    ) -> ExperimentResult:
        log = self.log
        assert log is not None and self.fault is not None
        self.probes.stop()
        await self.fault.roll_back()
        if log.run.state != state:
            await log.set_state(state, {"reason": reason} if reason else None)
        shown = [r.__dict__ for r in results or []]
        log.run.verdict = verdict
        log.run.summary = {
            **log.run.summary,
            "verdict": verdict,
            "reason": reason,
            "abort_reason": self.abort_reason,
            "recovery_time_s": recovery_time,
            "approved_by": self.approved_by,
            "fault": self.fault.state,
            "results": shown,
        }
        await log.close(
            EventType.COMPLETE,
            {"state": state, "verdict": verdict, "reason": reason, "recovery_time_s": recovery_time},
        )
        return ExperimentResult(state, verdict, reason, recovery_time, results or [])
