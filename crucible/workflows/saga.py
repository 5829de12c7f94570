"""Sagas (seed 001 §3.3): ordered steps, and every completed step compensated in reverse order.

A step's action runs as one activity with the step's retry policy. When it still fails,
when the ``abort`` signal arrives or when the run is cancelled, every completed step is
compensated, last first, each compensation an activity with the same retries; then the
steps' verify requests check that state was restored. A compensation that still fails
waits in ``ManualIntervention`` for the ``resolve`` signal.

The saga runs in a task of its own, so that cancelling the run does not interrupt it: a
step in flight finishes (and is compensated if it completed), and compensation runs to
its end before the run ends ``CANCELLED``. Only ``ManualIntervention`` gives way to a
cancellation, and the run's last event lists what was left undone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from crucible.activities.saga import SagaActivities
    from crucible.core.events import EventType
    from crucible.core.sagas.models import (
        ACTION,
        COMPENSATED,
        COMPENSATION,
        MARKED_RESOLVED,
        NO_COMPENSATION,
        NOT_COMPENSATED,
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


def _failure(exc: ActivityError) -> dict[str, Any]:
    """What the last attempt of a failed call said: its reason, error type, attempt and status."""
    cause = exc.cause
    found: dict[str, Any] = {"reason": str(cause or exc)}
    if isinstance(cause, ApplicationError):
        found["error"] = cause.type
        if cause.details and isinstance(cause.details[0], dict):
            found.update({k: v for k, v in cause.details[0].items() if v is not None})
    elif cause is not None:
        found["error"] = type(cause).__name__
    return found


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
        self.compensations: list[CompensationOutcome] = []
        self.verifications: list[VerifyOutcome] = []
        self.stop: _Stop | None = None
        self.compensating = False
        self.cancel_requested = False
        self.awaiting: int | None = None
        self.resolution: ResolveInput | None = None

    @workflow.run
    async def run(self, request: SagaInput) -> SagaResult:
        self.request = request
        self.log = RunEventLog(kind=KIND)
        return await self.log.guard(lambda: self._run(request))

    @workflow.signal
    def abort(self, arg: AbortInput) -> None:
        """Stop after the step in flight and compensate every completed step."""
        if self.stop is None and not self.compensating:
            self.stop = _Stop("abort", (arg.reason or "aborted")[:MAX_NOTE_CHARS])

    @workflow.signal
    def resolve(self, arg: ResolveInput) -> None:
        """``retry`` the failed compensation, or ``mark_resolved`` it and go on (ManualIntervention only)."""
        if self.awaiting is None:
            workflow.logger.warning("resolve (%s) ignored: no compensation waits for one", arg.action)
            return
        self.resolution = dataclasses.replace(arg, note=(arg.note or "")[:MAX_NOTE_CHARS])

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
            "stopping": dataclasses.asdict(self.stop) if self.stop else None,
            "compensations": [dataclasses.asdict(c) for c in self.compensations],
            "awaiting_resolution": None
            if self.awaiting is None
            else {"step": self.awaiting, "signal": "resolve"},
        }

    async def _run(self, request: SagaInput) -> SagaResult:
        log = self.log
        assert log is not None
        saga = asyncio.ensure_future(self._saga(request))
        while True:
            try:
                result = await asyncio.shield(saga)
                break
            except asyncio.CancelledError:
                if saga.done():  # it ended as the cancellation came: nothing is left to stop
                    result = saga.result()
                    break
                self.cancel_requested = True
                if self.stop is None and not self.compensating:
                    self.stop = _Stop("cancel", "the run was cancelled")
        summary = self._summary(result)
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
            {"name": request.name, "steps": [self._shown(n, s) for n, s in enumerate(request.steps, 1)]},
        )
        await log.set_state("SagaInitiated", {"name": request.name, "steps": len(request.steps)})
        for index, step in enumerate(request.steps, start=1):
            if self.stop is not None or not await self._step(request, index, step):
                break
        if self.stop is None and self.failed is None:
            await log.set_state(SAGA_COMPLETED, {"completed_steps": self.completed})
            return self._result(SAGA_COMPLETED)
        if self.stop is not None:
            await log.record(EventType.STOP_REQUESTED, dataclasses.asdict(self.stop))
        return await self._compensate(request)

    def _call(self, index: int, step: SagaStep, phase: str, call: SagaCall) -> SagaCallInput:
        assert self.log is not None
        return SagaCallInput(
            run_id=self.log.run.run_id,
            step=index,
            phase=phase,
            call=call,
            variables=dict(self.variables),
            headers_secret=step.headers_secret,
            timeout_s=step.timeout_s,
        )

    async def _execute(self, method: Any, request: SagaInput, step: SagaStep, call: SagaCallInput) -> Any:
        return await workflow.execute_activity_method(
            method,
            call,
            start_to_close_timeout=timedelta(seconds=step.timeout_s) + CALL_MARGIN,
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
            retry_policy=step.retry.policy(),
        )

    async def _step(self, request: SagaInput, index: int, step: SagaStep) -> bool:
        """Run one step's action; whether it completed."""
        log = self.log
        assert log is not None
        about = {"step": index, "name": step.name}
        await log.set_state(f"Step{index}_Pending", about)
        key = idempotency_key(log.run.run_id, index, ACTION)
        await log.set_state(
            f"Step{index}_InProgress", {**about, "request": step.action.describe(), "idempotency_key": key}
        )
        self.current = index
        try:
            done: SagaCallResult = await self._execute(
                SagaActivities.perform_saga_action,
                request,
                step,
                self._call(index, step, ACTION, step.action),
            )
        except ActivityError as exc:
            self.failed = index
            await log.set_state(f"Step{index}_Failed", {**about, **_failure(exc)})
            return False
        finally:
            self.current = None
        self.variables.update(done.captured)
        self.completed.append(index)
        outcome = {"status": done.status, "attempt": done.attempt, "captured": done.captured}
        await log.set_state(f"Step{index}_Completed", {**about, **{k: v for k, v in outcome.items() if v}})
        return True

    async def _compensate(self, request: SagaInput) -> SagaResult:
        log = self.log
        assert log is not None
        self.compensating = True
        order = list(reversed(self.completed))
        why = (
            f"step {self.failed} failed" if self.failed is not None or self.stop is None else self.stop.reason
        )
        await log.set_state("Compensating", {"reason": why, "steps": order})
        for index in order:
            step = request.steps[index - 1]
            if step.compensation is None:
                self.compensations.append(CompensationOutcome(index, step.name, NO_COMPENSATION))
                await log.record(EventType.COMPENSATION_SKIPPED, {"step": index, "name": step.name})
            elif not await self._compensate_step(request, index, step, step.compensation):
                return self._left_undone(request, order)
        await self._verify(request, order)
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

    async def _compensate_step(self, request: SagaInput, index: int, step: SagaStep, call: SagaCall) -> bool:
        """Compensate one step, through ManualIntervention if need be; False if cancelled there."""
        log = self.log
        assert log is not None
        about = {"step": index, "name": step.name}
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
                done: SagaCallResult = await self._execute(
                    SagaActivities.compensate_saga_step,
                    request,
                    step,
                    self._call(index, step, COMPENSATION, call),
                )
            except ActivityError as exc:
                await log.set_state("CompensationFailed", {**about, "round": rounds, **_failure(exc)})
            else:
                self.compensations.append(CompensationOutcome(index, step.name, COMPENSATED, rounds, note))
                await log.record(
                    EventType.STEP_COMPENSATED,
                    {**about, "status": done.status, "attempt": done.attempt, "round": rounds},
                )
                return True
            self.awaiting = index  # before the event: a resolve sent on seeing it must count
            await log.set_state(
                MANUAL_INTERVENTION, {**about, "signal": "resolve", "actions": ["retry", "mark_resolved"]}
            )
            await workflow.wait_condition(lambda: self.resolution is not None or self.cancel_requested)
            self.awaiting = None
            resolution, self.resolution = self.resolution, None
            if resolution is None:
                return False
            note = resolution.note or None
            await log.record(
                EventType.INTERVENTION_RESOLVED, {**about, "action": resolution.action, "note": note}
            )
            await log.set_state("Compensating", {**about, "after": resolution.action})
            if resolution.action == "mark_resolved":
                self.compensations.append(
                    CompensationOutcome(index, step.name, MARKED_RESOLVED, rounds, note)
                )
                return True

    async def _verify(self, request: SagaInput, order: list[int]) -> None:
        log = self.log
        assert log is not None
        for index in order:
            step = request.steps[index - 1]
            if step.verify is None:
                continue
            call = self._call(index, step, VERIFY, step.verify)
            try:
                done: SagaCallResult = await self._execute(
                    SagaActivities.verify_saga_step, request, step, call
                )
                outcome = VerifyOutcome(index, step.name, True, status=done.status)
            except ActivityError as exc:
                failure = _failure(exc)
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
            fully_compensated=(
                all(c.outcome in (COMPENSATED, NO_COMPENSATION) for c in self.compensations)
                if compensated
                else None
            ),
        )

    def _summary(self, result: SagaResult) -> dict[str, Any]:
        summary = dataclasses.asdict(result)
        summary["not_compensated"] = [c.step for c in result.compensations if c.outcome == NOT_COMPENSATED]
        summary["marked_resolved"] = [c.step for c in result.compensations if c.outcome == MARKED_RESOLVED]
        return summary

    @staticmethod
    def _shown(index: int, step: SagaStep) -> dict[str, Any]:
        return {
            "step": index,
            "name": step.name,
            "action": step.action.describe(),
            "capture": sorted(step.action.capture),
            "compensation": step.compensation.describe() if step.compensation else None,
            "verify": step.verify.describe() if step.verify else None,
            "retry": dataclasses.asdict(step.retry),
            "timeout_s": step.timeout_s,
        }
