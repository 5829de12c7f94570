"""Sagas (seed 001 §3.3): ordered steps, and every step that took effect compensated in reverse order.

A step's action runs as one activity with the step's retry policy. When it still fails,
when the ``abort`` signal arrives or when the run is cancelled, every completed step is
compensated, last first, each compensation an activity with the same retries; then the
steps' verify requests check that state was restored. A compensation that still fails
waits in ``ManualIntervention`` for the ``resolve`` signal.

A step whose action failed in a way that may have taken effect (its last attempt timed out,
got a 5xx or a transport error) is compensated too, first: its target may have applied it.
So is a step interrupted by ``abort`` or a cancellation, whose action is cancelled in flight
(it heartbeats, so a cancellation reaches an attempt that is waiting for its target).

The saga runs in a task of its own, so that cancelling the run does not interrupt its
compensation: compensation runs to its end before the run ends ``CANCELLED``. Only
``ManualIntervention`` gives way to a cancellation, and the run's last event lists what was
left undone. A signal, or a cancellation, that changes nothing is a ``SIGNAL_IGNORED`` event.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from crucible.activities.saga import SagaActivities
    from crucible.core.events import EventType
    from crucible.core.sagas.failures import described, interrupted, may_have_taken_effect
    from crucible.core.sagas.models import (
        ACTION,
        COMPENSATED,
        COMPENSATED_UNCERTAIN,
        COMPENSATION,
        LEFT_UNCERTAIN,
        MARKED_RESOLVED,
        NO_COMPENSATION,
        NOT_COMPENSATED,
        UNDONE,
        VERIFY,
        AbortInput,
        CompensationOutcome,
        ResolveInput,
        SagaCall,
        SagaCallInput,
        SagaCallResult,
        SagaInput,
        SagaResult,
        SagaStep,
        VerifyOutcome,
        idempotency_key,
    )
    from crucible.workflows.events import RunEventLog

KIND = "saga"
#: A call's activity may take this much longer than the call's own timeout (secrets, heartbeats).
CALL_MARGIN = timedelta(seconds=10)

#: Longer reasons and notes sent with signals are cut to this, for events and summaries.
MAX_NOTE_CHARS = 1000

SAGA_COMPLETED = "SagaCompleted"
SAGA_CANCELLED = "SagaCancelled"
MANUAL_INTERVENTION = "ManualIntervention"


@dataclasses.dataclass
class _Stop:
    by: str  # "abort" or "cancel"
    reason: str


@workflow.defn
class SagaWorkflow:
    def __init__(self) -> None:
        self.log: RunEventLog | None = None
        self.request: SagaInput | None = None
        self.variables: dict[str, Any] = {}
        self.current: int | None = None
        self.completed: list[int] = []
        self.failed: int | None = None
        #: The failed or interrupted step that may have taken effect.
        self.uncertain: int | None = None
        self.interrupted: int | None = None
        self.compensations: list[CompensationOutcome] = []
        self.verifications: list[VerifyOutcome] = []
        self.stop: _Stop | None = None
        self.compensating = False
        self.cancel_requested = False
        #: Set before the saga's last state is written: nothing may stop it after that.
        self.finished = False
        self.awaiting: int | None = None
        self.resolutions: list[ResolveInput] = []
        self.action: workflow.ActivityHandle[SagaCallResult] | None = None
        #: Ignored signals that came before ``REQUESTED`` was written; they follow it.
        self.early_ignored: list[dict[str, Any]] = []
        self.requested = False

    @workflow.run
    async def run(self, request: SagaInput) -> SagaResult:
        self.request = request
        self.log = RunEventLog(kind=KIND)
        return await self.log.guard(lambda: self._run(request))

    @workflow.signal
    async def abort(self, arg: AbortInput) -> None:
        """Interrupt the step in flight, run no other, and compensate every step that took effect."""
        reason = (arg.reason or "aborted")[:MAX_NOTE_CHARS]
        if (why := self._why_not_stopped()) is not None:
            await self._ignore("abort", why, reason)
            return
        self._stop(_Stop("abort", reason))

    @workflow.signal
    async def resolve(self, arg: ResolveInput) -> None:
        """``retry`` the failed compensation, or ``mark_resolved`` it and go on (ManualIntervention only).

        Each wait in ManualIntervention takes the first resolve it gets; later ones, and those
        sent while nothing waits, are recorded as ignored.
        """
        arg = dataclasses.replace(arg, note=(arg.note or "")[:MAX_NOTE_CHARS])
        if self.awaiting is None:
            why = "no compensation waits for one"
            await self._ignore("resolve", why, arg.note or None, action=arg.action)
            return
        self.resolutions.append(arg)

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """The state, the step in flight, what completed and what has been compensated."""
        assert self.log is not None
        return {
            "state": self.log.run.state,
            "step": self.current,
            "steps_total": len(self.request.steps) if self.request else None,
            "completed_steps": self.completed,
            "failed_step": self.failed,
            "uncertain_step": self.uncertain,
            "stopping": dataclasses.asdict(self.stop) if self.stop else None,
            "compensations": [dataclasses.asdict(c) for c in self.compensations],
            "awaiting_resolution": None
            if self.awaiting is None
            else {"step": self.awaiting, "signal": "resolve"},
        }

    def _why_not_stopped(self) -> str | None:
        """Why an abort or a cancellation would change nothing now; None when it stops the saga."""
        if self.finished:
            return "the saga has finished"
        if self.awaiting is not None:
            return f"compensation has begun; step {self.awaiting} waits in {MANUAL_INTERVENTION} for resolve"
        if self.compensating:
            return "compensation has begun"
        if self.stop is not None:
            return f"the saga is stopping already ({self.stop.by})"
        return None

    def _stop(self, stop: _Stop) -> None:
        self.stop = stop
        if self.action is not None:
            self.action.cancel()  # it reports back once the activity has stopped

    def _ignored(self, signal: str, why: str, note: str | None, **extra: Any) -> None:
        """Record a signal (or cancellation) that changed nothing; the next flush writes it."""
        workflow.logger.info("%s ignored: %s", signal, why)
        data = {"signal": signal, "why": why, "note": note, **extra}
        if self.log is None or not self.requested:
            self.early_ignored.append(data)
        elif not self.log.closed:
            self.log.emit(EventType.SIGNAL_IGNORED, data)

    async def _ignore(self, signal: str, why: str, note: str | None, **extra: Any) -> None:
        self._ignored(signal, why, note, **extra)
        if self.requested and self.log is not None and not self.log.closed:
            await self.log.flush()

    async def _run(self, request: SagaInput) -> SagaResult:
        log = self.log
        assert log is not None
        saga = asyncio.ensure_future(self._saga(request))
        while True:
            try:
                result = await asyncio.shield(saga)
                break
            except asyncio.CancelledError:
                if (why := self._why_not_stopped()) is None:
                    self.cancel_requested = True
                    self._stop(_Stop("cancel", "the run was cancelled"))
                elif self.finished:
                    self._ignored("cancel", why, None)
                else:  # stopping or compensating already: that goes on, and the run ends CANCELLED
                    self.cancel_requested = True
        summary = result.summary()
        log.run.summary = summary
        if self.cancel_requested:
            await log.close(EventType.CANCELLED, {"reason": "cancelled", **summary})
            raise asyncio.CancelledError("the saga was cancelled")
        await log.close(EventType.COMPLETE, summary)
        return result

    async def _saga(self, request: SagaInput) -> SagaResult:
        log = self.log
        assert log is not None
        self.variables = {"run_id": log.run.run_id}
        await log.record(
            EventType.REQUESTED,
            {"name": request.name, "steps": [s.shown(n) for n, s in enumerate(request.steps, 1)]},
        )
        self.requested = True
        for data in self.early_ignored:
            log.emit(EventType.SIGNAL_IGNORED, data)
        await log.set_state("SagaInitiated", {"name": request.name, "steps": len(request.steps)})
        for index, step in enumerate(request.steps, start=1):
            if self.stop is not None or not await self._step(request, index, step):
                break
        if self.stop is None and self.failed is None:
            self.finished = True
            await log.set_state(SAGA_COMPLETED, {"completed_steps": self.completed})
            result = self._result(SAGA_COMPLETED)
        else:
            if self.stop is not None:
                stop: dict[str, Any] = dataclasses.asdict(self.stop)
                if self.interrupted is not None:
                    stop.update(interrupted_step=self.interrupted, outcome_uncertain=True)
                await log.record(EventType.STOP_REQUESTED, stop)
            result = await self._compensate(request)
        # Signals that came while it ended are recorded before the run's last event.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    def _call(self, index: int, step: SagaStep, phase: str, call: SagaCall) -> SagaCallInput:
        assert self.log is not None
        return step.call_input(self.log.run.run_id, index, phase, call, self.variables)

    def _start(
        self, method: Any, request: SagaInput, step: SagaStep, call: SagaCallInput
    ) -> workflow.ActivityHandle[SagaCallResult]:
        handle: workflow.ActivityHandle[SagaCallResult] = workflow.start_activity_method(
            method,
            call,
            start_to_close_timeout=timedelta(seconds=step.timeout_s) + CALL_MARGIN,
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
            retry_policy=step.retry.policy(),
            # An interrupted action is compensated once it has stopped, never while it still runs.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return handle

    async def _step(self, request: SagaInput, index: int, step: SagaStep) -> bool:
        """Run one step's action; whether it completed."""
        log = self.log
        assert log is not None
        about = {"step": index, "name": step.name}
        await log.set_state(f"Step{index}_Pending", about)
        if self.stop is not None:  # stopped meanwhile: the step is never sent
            return False
        key = idempotency_key(log.run.run_id, index, ACTION)
        self.current = index
        # Started before its state is written, so that a stop from now on interrupts it.
        self.action = self._start(
            SagaActivities.perform_saga_action, request, step, self._call(index, step, ACTION, step.action)
        )
        try:
            sent = {**about, "request": step.action.describe(), "idempotency_key": key}
            await log.set_state(f"Step{index}_InProgress", sent)
            done = await self.action
        except (ActivityError, asyncio.CancelledError) as exc:
            await self._not_completed(index, step, exc)
            return False
        finally:
            self.action = None
            self.current = None
        self.variables.update(done.captured)
        self.completed.append(index)
        outcome = {"status": done.status, "attempt": done.attempt, "captured": sorted(done.captured)}
        await log.set_state(f"Step{index}_Completed", {**about, **{k: v for k, v in outcome.items() if v}})
        return True

    async def _not_completed(self, index: int, step: SagaStep, exc: BaseException) -> None:
        """A step's action failed, or was interrupted: note whether it may have taken effect."""
        assert self.log is not None
        uncertain = may_have_taken_effect(exc)
        if uncertain:
            self.uncertain = index
        if self.stop is not None and interrupted(exc):
            self.interrupted = index  # STOP_REQUESTED says so
            return
        self.failed = index
        data = {"step": index, "name": step.name, **described(exc), "outcome_uncertain": uncertain}
        await self.log.set_state(f"Step{index}_Failed", data)

    async def _compensate(self, request: SagaInput) -> SagaResult:
        log = self.log
        assert log is not None
        self.compensating = True
        order = list(reversed(self.completed))
        if self.uncertain is not None:
            if request.steps[self.uncertain - 1].compensate_if_uncertain:
                order.insert(0, self.uncertain)
            else:  # said, not guessed at: the step may or may not have taken effect
                name = request.steps[self.uncertain - 1].name
                self.compensations.append(CompensationOutcome(self.uncertain, name, LEFT_UNCERTAIN))
        why = (
            f"step {self.failed} failed" if self.failed is not None or self.stop is None else self.stop.reason
        )
        begun: dict[str, Any] = {"reason": why, "steps": order}
        if self.uncertain is not None:
            begun["uncertain_step"] = self.uncertain
        await log.set_state("Compensating", begun)
        for index in order:
            step = request.steps[index - 1]
            if step.compensation is None:
                self.compensations.append(CompensationOutcome(index, step.name, NO_COMPENSATION))
                await log.record(EventType.COMPENSATION_SKIPPED, self._about(index, step))
            elif not await self._compensate_step(request, index, step, step.compensation):
                return self._left_undone(request, order)
        await self._verify(request, order)
        self.finished = True
        result = self._result(SAGA_CANCELLED)
        await log.set_state(
            "CompensationCompleted",
            {
                "compensations": [dataclasses.asdict(c) for c in self.compensations],
                "fully_compensated": result.fully_compensated,
                "restored": result.restored,
            },
        )
        await log.set_state(SAGA_CANCELLED, {"completed_steps": self.completed, "failed_step": self.failed})
        return result

    def _about(self, index: int, step: SagaStep) -> dict[str, Any]:
        """A step's number and name, and ``uncertain`` for the step that may have taken effect."""
        about: dict[str, Any] = {"step": index, "name": step.name}
        if index == self.uncertain:
            about["uncertain"] = True
        return about

    async def _compensate_step(self, request: SagaInput, index: int, step: SagaStep, call: SagaCall) -> bool:
        """Compensate one step, through ManualIntervention if need be; False if cancelled there."""
        log = self.log
        assert log is not None
        about = self._about(index, step)
        done_as = COMPENSATED_UNCERTAIN if index == self.uncertain else COMPENSATED
        key = idempotency_key(log.run.run_id, index, COMPENSATION)
        note: str | None = None
        rounds = 0
        while True:
            rounds += 1
            await log.record(
                EventType.COMPENSATION_STARTED,
                {**about, "request": call.describe(), "idempotency_key": key, "round": rounds},
            )
            try:
                done: SagaCallResult = await self._start(
                    SagaActivities.compensate_saga_step,
                    request,
                    step,
                    self._call(index, step, COMPENSATION, call),
                )
            except ActivityError as exc:
                await log.set_state("CompensationFailed", {**about, "round": rounds, **described(exc)})
            else:
                self.compensations.append(CompensationOutcome(index, step.name, done_as, rounds, note))
                await log.record(
                    EventType.STEP_COMPENSATED,
                    {**about, "status": done.status, "attempt": done.attempt, "round": rounds},
                )
                return True
            resolution = await self._intervention(index, about)
            if resolution is None:
                return False
            note = resolution.note or None
            if resolution.action == "mark_resolved":
                self.compensations.append(
                    CompensationOutcome(index, step.name, MARKED_RESOLVED, rounds, note)
                )
                return True

    async def _intervention(self, index: int, about: dict[str, Any]) -> ResolveInput | None:
        """Wait in ManualIntervention for a resolve; None if the run is cancelled first."""
        log = self.log
        assert log is not None
        self.awaiting = index  # before the event: a resolve sent on seeing it must count
        await log.set_state(
            MANUAL_INTERVENTION, {**about, "signal": "resolve", "actions": ["retry", "mark_resolved"]}
        )
        await workflow.wait_condition(lambda: bool(self.resolutions) or self.cancel_requested)
        self.awaiting = None
        if not self.resolutions:
            return None
        resolution, *later = self.resolutions
        self.resolutions.clear()
        note = resolution.note or None
        log.emit(EventType.INTERVENTION_RESOLVED, {**about, "action": resolution.action, "note": note})
        for extra in later:
            why = f"step {index} took an earlier resolve ({resolution.action})"
            self._ignored("resolve", why, extra.note or None, action=extra.action)
        await log.set_state("Compensating", {**about, "after": resolution.action})
        return resolution

    async def _verify(self, request: SagaInput, order: list[int]) -> None:
        log = self.log
        assert log is not None
        for index in order:
            step = request.steps[index - 1]
            if step.verify is None:
                continue
            call = self._call(index, step, VERIFY, step.verify)
            try:
                done: SagaCallResult = await self._start(SagaActivities.verify_saga_step, request, step, call)
                outcome = VerifyOutcome(index, step.name, True, status=done.status)
            except ActivityError as exc:
                failure = described(exc)
                outcome = VerifyOutcome(index, step.name, False, failure["reason"], failure.get("status"))
            self.verifications.append(outcome)
            await log.record(EventType.STEP_VERIFIED, dataclasses.asdict(outcome))

    def _left_undone(self, request: SagaInput, order: list[int]) -> SagaResult:
        """The result of a saga cancelled in ManualIntervention: what it did not compensate."""
        done = {c.step for c in self.compensations}
        for index in order:
            if index not in done:
                name = request.steps[index - 1].name
                self.compensations.append(CompensationOutcome(index, name, NOT_COMPENSATED))
        return self._result(MANUAL_INTERVENTION)

    def _result(self, state: str) -> SagaResult:
        assert self.request is not None
        verified = [v.passed for v in self.verifications]
        compensated = state != SAGA_COMPLETED
        return SagaResult(
            state=state,
            steps=len(self.request.steps),
            completed_steps=list(self.completed),
            failed_step=self.failed,
            stopped_by=self.stop.by if self.stop else None,
            reason=self.stop.reason if self.stop else None,
            compensations=list(self.compensations),
            verifications=list(self.verifications),
            restored=all(verified) if verified else None,
            fully_compensated=all(c.outcome in UNDONE for c in self.compensations) if compensated else None,
            uncertain_step=self.uncertain,
        )
