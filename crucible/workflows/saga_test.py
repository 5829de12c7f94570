"""The event-driven saga test (seed 001 §1.4): watch Kafka while a business flow runs, then assert.

1. Mark the end of every partition of the topics (``SUBSCRIBED``): the consumer reads from
   there, so nothing published after the mark is missed.
2. Inject the fault, if any, before the trigger or right after it (``FAULT_INJECTED``).
3. Send the trigger (``TRIGGERED``); its response may give the correlation id.
4. Collect the correlation id's events until every expected type is seen and a settle time
   has passed, or until the timeout (``EVENT_OBSERVED`` each, bounded).
5. Roll the fault back (``FAULT_ROLLED_BACK``): after ``duration_s``, or once the events are
   in, and always, also when the test fails or is cancelled, and never before the injection
   has finished: a cancel does not interrupt an injection, the rollback waits for it.
6. Assert (``ASSERTION_PASSED`` / ``ASSERTION_FAILED`` each) and end ``COMPLETE`` with the
   verdict: a test that finds a broken saga completes, with verdict ``FAILED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from crucible.activities.kafka_watch import KafkaWatchActivities
    from crucible.activities.saga_test import FAULT_REFUSED, TRIGGER_UNREACHABLE, SagaTestActivities
    from crucible.core.events import EventType
    from crucible.core.saga_tests.assertions import (
        check_trigger,
        compensation_events,
        evaluate,
        failure_event,
        verdict_of,
    )
    from crucible.core.saga_tests.models import (
        FAULT,
        FAULT_ROLLED_BACK,
        RECOVERY_TIME,
        ROLLBACK,
        AssertionResult,
        CollectedEvents,
        CollectEventsInput,
        FaultActionResult,
        FaultPlan,
        FaultRequestInput,
        InspectProcessInput,
        MarkTopicEndsInput,
        ProcessIdentity,
        RequestSpec,
        SagaTestInput,
        SagaTestResult,
        SagaTestSpec,
        SignalProcessInput,
        TopicOffsets,
        TriggerInput,
        TriggerResult,
    )
    from crucible.workflows.events import RunEventLog

KIND = "sagatest"
KAFKA_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=5
)
#: The trigger carries an idempotency key, so a request that got no answer may be sent again.
TRIGGER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
FAULT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
#: A fault left in place hurts the next test too: its rollback tries harder.
ROLLBACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=10
)
CALL_TIMEOUT = timedelta(seconds=60)
#: The collection may run this much past its deadline and settle time (connecting, the last poll).
COLLECT_MARGIN_S = 60.0
#: ``EVENT_OBSERVED`` events per test; the summary and ``COMPLETE`` count the rest.
MAX_OBSERVED_EVENTS = 100


def _assertion(result: AssertionResult, *, details: bool = True) -> dict[str, Any]:
    shown = dataclasses.asdict(result)
    return shown if details else {k: v for k, v in shown.items() if k != "details"}


@workflow.defn
class SagaTestWorkflow:
    def __init__(self) -> None:
        self.log: RunEventLog | None = None
        self.correlation_id: str | None = None
        self.fault_state: str | None = None
        self._injection: asyncio.Future[None] | None = None
        #: The process the fault signalled (or may have), as inspected; None: no signal to undo.
        self._process: ProcessIdentity | None = None
        self._rollback: asyncio.Future[bool | None] | None = None
        self._timed_rollback: asyncio.Future[None] | None = None

    @workflow.run
    async def run(self, request: SagaTestInput) -> SagaTestResult:
        self.log = RunEventLog(kind=KIND)
        return await self.log.guard(lambda: self._run(request))

    async def _run(self, request: SagaTestInput) -> SagaTestResult:
        log = self.log
        assert log is not None
        test = request.test
        self.correlation_id = test.correlation_id
        log.run.summary = {"topics": test.topics, "expected_events": test.expected_events}
        await log.record(EventType.REQUESTED, self._requested(test))
        try:
            return await self._test(request)
        finally:
            await self._end_fault(test)

    async def _test(self, request: SagaTestInput) -> SagaTestResult:
        log = self.log
        assert log is not None
        test = request.test
        log.run.state = "Subscribing"
        try:
            offsets = await workflow.execute_activity_method(
                KafkaWatchActivities.mark_topic_ends,
                MarkTopicEndsInput(test.topics),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=KAFKA_RETRY,
            )
        except ActivityError as exc:  # the run's FAILED event says why, not "activity task failed"
            raise ApplicationError(
                f"could not subscribe to the topics: {exc.cause or exc}",
                type="SubscribeFailed",
                non_retryable=True,
            ) from None
        await log.record(EventType.SUBSCRIBED, {"offsets": offsets.offsets})
        if test.fault is not None and test.fault.when == "before":
            await self._inject(test, test.fault)
        log.run.state = "Triggering"
        trigger = await self._trigger(test)
        accepted = check_trigger(trigger)
        assertions = [accepted]
        collected: CollectedEvents | None = None
        if accepted.passed:
            assert trigger.correlation_id is not None
            if test.fault is not None and test.fault.when == "after":
                await self._inject(test, test.fault)
            collected = await self._collect(request, offsets, trigger.correlation_id)
            assertions += evaluate(test, collected.events)
        rolled_back = await self._end_fault(test)
        if rolled_back is not None:
            reason = "the fault was rolled back" if rolled_back else "the fault's rollback failed"
            assertions.append(AssertionResult(FAULT_ROLLED_BACK, rolled_back, reason))
        return await self._conclude(test, assertions, collected)

    def _requested(self, test: SagaTestSpec) -> dict[str, Any]:
        fault = test.fault
        return {
            "topics": test.topics,
            "trigger": test.trigger.shown(),
            "correlation_id": test.correlation_id,
            "correlation_from": test.correlation_from,
            "correlation_path": test.correlation_path,
            "type_path": test.type_path,
            "time_path": test.time_path,
            "event_id_path": test.event_id_path,
            "expected_events": test.expected_events,
            "allow_repeated_types": test.allow_repeated_types,
            "failure_event": failure_event(test),
            "compensation_events": compensation_events(test),
            "recovery_within_s": test.recovery_within_s,
            "settle_s": test.settle_s,
            "timeout_s": test.timeout_s,
            "fault": None if fault is None else fault.shown(),
        }

    async def _trigger(self, test: SagaTestSpec) -> TriggerResult:
        log = self.log
        assert log is not None
        try:
            trigger = await workflow.execute_activity_method(
                SagaTestActivities.send_trigger,
                TriggerInput(log.run.run_id, test.trigger, test.headers_secret, test.correlation_from),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=TRIGGER_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type == TRIGGER_UNREACHABLE):
                raise
            trigger = TriggerResult(0, 0.0, problem=str(cause))
        if test.correlation_id is not None:
            trigger.correlation_id = test.correlation_id
        self.correlation_id = trigger.correlation_id
        log.run.summary = {**log.run.summary, "correlation_id": trigger.correlation_id}
        await log.record(EventType.TRIGGERED, dataclasses.asdict(trigger))
        return trigger

    async def _inject(self, test: SagaTestSpec, fault: FaultPlan) -> None:
        assert self.log is not None
        self.log.run.state = "InjectingFault"
        # Set before the injection: a fault that was half applied before a failure is rolled back too.
        self.fault_state = "injecting"
        # Shielded: a cancel does not stop the injection half way, and the rollback waits for it.
        # A rollback that overtook its injection would leave the fault in place.
        self._injection = asyncio.ensure_future(self._apply(test, fault))
        await asyncio.shield(self._injection)
        if fault.duration_s is not None:
            self._timed_rollback = asyncio.ensure_future(self._roll_back_after(test, fault.duration_s))

    async def _apply(self, test: SagaTestSpec, fault: FaultPlan) -> None:
        log = self.log
        assert log is not None
        result = FaultActionResult()
        try:
            if fault.process is not None:
                self._process = await workflow.execute_activity_method(
                    SagaTestActivities.inspect_process,
                    InspectProcessInput(fault.process.pid),
                    start_to_close_timeout=CALL_TIMEOUT,
                    retry_policy=FAULT_RETRY,
                )
                await self._signal(FAULT, fault.process.signal, FAULT_RETRY)
                result.signalled = True
            if fault.http is not None:
                result.status = await self._fault_request(test, FAULT, fault.http, FAULT_RETRY)
        except ActivityError as exc:
            raise ApplicationError(
                f"the fault could not be injected: {exc.cause or exc}",
                type="FaultNotInjected",
                non_retryable=True,
            ) from None
        self.fault_state = "injected"
        inspected = dataclasses.asdict(self._process) if self._process else None
        await log.record(
            EventType.FAULT_INJECTED,
            {**fault.shown(), **dataclasses.asdict(result), "inspected": inspected},
        )

    async def _signal(self, phase: str, signal: str, retry: RetryPolicy) -> tuple[bool, str | None]:
        assert self._process is not None
        try:
            result = await workflow.execute_activity_method(
                SagaTestActivities.signal_process,
                SignalProcessInput(phase, self._process, signal),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=retry,
            )
        except ActivityError as exc:
            cause = exc.cause
            if phase == FAULT and isinstance(cause, ApplicationError) and cause.type == FAULT_REFUSED:
                self._process = None  # refused: nothing was signalled, nothing to undo
            raise
        return result.signalled, result.note

    async def _fault_request(
        self, test: SagaTestSpec, phase: str, http: RequestSpec, retry: RetryPolicy
    ) -> int:
        assert self.log is not None
        sent = await workflow.execute_activity_method(
            SagaTestActivities.send_fault_request,
            FaultRequestInput(self.log.run.run_id, phase, http, test.headers_secret),
            start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=retry,
        )
        return sent.status

    async def _end_fault(self, test: SagaTestSpec) -> bool | None:
        """Roll back the fault now unless its timer did already: whether that worked, or None when
        there is nothing to roll back."""
        if self._timed_rollback is not None and not self._timed_rollback.done():
            self._timed_rollback.cancel()
        if self.fault_state is None:
            return None
        return await self._roll_back(test)

    async def _roll_back_after(self, test: SagaTestSpec, delay_s: float) -> None:
        await workflow.sleep(timedelta(seconds=delay_s))
        await self._roll_back(test)

    async def _roll_back(self, test: SagaTestSpec) -> bool | None:
        """Roll the fault back once; every caller waits for that one rollback, even when cancelled."""
        if self._rollback is None:
            self._rollback = asyncio.ensure_future(self._do_roll_back(test))
        try:
            return await asyncio.shield(self._rollback)
        except asyncio.CancelledError:
            await self._rollback
            raise

    async def _do_roll_back(self, test: SagaTestSpec) -> bool | None:
        log = self.log
        fault = test.fault
        assert log is not None and fault is not None
        if self._injection is not None:
            with contextlib.suppress(Exception):  # a failed injection failed the run already
                await self._injection
        signal = fault.rollback_signal if self._process is not None else None
        if fault.rollback_http is None and signal is None:
            self.fault_state = "no rollback"
            return None
        result = FaultActionResult()
        errors: list[str] = []
        if signal is not None:
            try:
                result.signalled, result.note = await self._signal(ROLLBACK, signal, ROLLBACK_RETRY)
            except ActivityError as exc:
                errors.append(str(exc.cause or exc))
        if fault.rollback_http is not None:
            try:
                result.status = await self._fault_request(test, ROLLBACK, fault.rollback_http, ROLLBACK_RETRY)
            except ActivityError as exc:
                errors.append(str(exc.cause or exc))
        self.fault_state = "rollback failed" if errors else "rolled back"
        shown = {"ok": not errors, **dataclasses.asdict(result)}
        await log.record(
            EventType.FAULT_ROLLED_BACK, shown | ({"error": "; ".join(errors)} if errors else {})
        )
        return not errors

    async def _collect(
        self, request: SagaTestInput, offsets: TopicOffsets, correlation_id: str
    ) -> CollectedEvents:
        log = self.log
        assert log is not None
        test = request.test
        log.run.state = "Collecting"
        collected = await workflow.execute_activity_method(
            KafkaWatchActivities.collect_correlated_events,
            CollectEventsInput(
                offsets,
                correlation_id,
                test.expected_events,
                test.correlation_path,
                test.type_path,
                test.time_path,
                test.settle_s,
                deadline=workflow.now().timestamp() + test.timeout_s,
                event_id_path=test.event_id_path,
            ),
            start_to_close_timeout=timedelta(seconds=test.timeout_s + test.settle_s + COLLECT_MARGIN_S),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
            retry_policy=KAFKA_RETRY,
        )
        for event in collected.events[:MAX_OBSERVED_EVENTS]:
            log.emit(EventType.EVENT_OBSERVED, dataclasses.asdict(event))
        await log.flush()
        return collected

    async def _conclude(
        self, test: SagaTestSpec, assertions: list[AssertionResult], collected: CollectedEvents | None
    ) -> SagaTestResult:
        log = self.log
        assert log is not None
        log.run.state = "Asserting"
        for result in assertions:
            passed = EventType.ASSERTION_PASSED if result.passed else EventType.ASSERTION_FAILED
            log.emit(passed, _assertion(result))
        verdict = verdict_of(assertions)
        observed = [e.type for e in collected.events] if collected else []
        counts = {
            "events": collected.matched if collected else 0,
            "messages_read": collected.read if collected else 0,
            "not_json": collected.not_json if collected else 0,
            "untyped": collected.untyped if collected else 0,
            "timed_out": collected.timed_out if collected else False,
        }
        recovery = next((a.details.get("recovery_s") for a in assertions if a.name == RECOVERY_TIME), None)
        log.run.verdict = verdict
        log.run.state = "Completed"
        log.run.summary = {
            **log.run.summary,
            "verdict": verdict,
            "observed": observed[:MAX_OBSERVED_EVENTS],
            "recovery_s": recovery,
            "fault": self.fault_state,
            "assertions": [_assertion(a) for a in assertions],
            **counts,
        }
        failed = [a for a in assertions if not a.passed]
        await log.close(
            EventType.COMPLETE,
            {
                "verdict": verdict,
                "correlation_id": self.correlation_id,
                "assertions": [_assertion(a, details=False) for a in assertions],
                "failed": [f"{a.name}: {a.reason}" for a in failed],
                **counts,
            },
        )
        return SagaTestResult(verdict, self.correlation_id, assertions, observed)

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """Where the test stands, its correlation id once known, and where its fault stands."""
        assert self.log is not None
        return {"state": self.log.run.state, "correlation_id": self.correlation_id, "fault": self.fault_state}
