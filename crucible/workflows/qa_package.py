"""The QA package run (seed 000): fetch the spec, generate and execute scenarios per
operation in parallel, evaluate the package, and record every step as an event.

Operations are executed in batches, one activity per batch, with at most two batches
in flight: the run's history grows with the number of batches (a few dozen at most),
not with the number of operations or requests.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from crucible.activities.ai import AiActivities
    from crucible.activities.db import QaDbActivities
    from crucible.activities.http import SPEC_INVALID, QaHttpActivities
    from crucible.core.events import EventType
    from crucible.core.qa.models import (
        EvaluateQaInput,
        ExecuteOperationsInput,
        FetchSpecInput,
        GeneratedScenarios,
        GenerateScenariosInput,
        GenerateScenariosResult,
        OperationOutcome,
        QaPackageRunInput,
        QaPackageRunResult,
    )
    from crucible.workflows.events import RunEventLog

KIND = "qa"
#: A batch of operations is never larger than this, nor smaller than one.
MAX_BATCH = 100
#: Batches per lane for a run of many operations: enough that lanes finish together.
BATCHES_PER_LANE = 4

FETCH_SPEC_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
#: A batch is retried after a worker crash or an outage (its writes are upserts); a batch that
#: fails this often has hit something no retry fixes, and the run fails saying what.
EXECUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=12
)
#: LLM attempts are counted inside the activity (each failure comes back as an event); this
#: policy only covers the activity itself being lost, to a worker crash say.
GENERATE_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
GENERATE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10), maximum_attempts=20
)
#: A dead worker's batch is retried this soon, and a cancellation reaches a batch this fast.
BATCH_HEARTBEAT_TIMEOUT = timedelta(seconds=4)


def plan_batches(operations: Sequence[str], lanes: int) -> list[list[str]]:
    """Split operations into batches: small runs get one operation per batch."""
    size = min(MAX_BATCH, max(1, math.ceil(len(operations) / (lanes * BATCHES_PER_LANE))))
    return [list(operations[i : i + size]) for i in range(0, len(operations), size)]


@workflow.defn
class QaPackageRunWorkflow:
    def __init__(self) -> None:
        self.log: RunEventLog | None = None
        self.total = 0
        self.done = 0
        self.failed = 0

    @workflow.run
    async def run(self, request: QaPackageRunInput) -> QaPackageRunResult:
        self.log = RunEventLog(kind=KIND)
        return await self.log.guard(lambda: self._run(request))

    async def _run(self, request: QaPackageRunInput) -> QaPackageRunResult:
        log = self.log
        assert log is not None
        run_id = workflow.info().workflow_id
        log.run.state = "FetchingSpec"
        await log.record(
            EventType.REQUESTED,
            {
                "spec_url": request.spec_url,
                "base_url": request.base_url,
                "generator": request.generator,
                "concurrency": request.concurrency,
                "header_names": request.header_names,
                "replay_of": request.replay_of,
            },
        )
        try:
            spec = await workflow.execute_activity_method(
                QaHttpActivities.fetch_spec,
                FetchSpecInput(
                    run_id, request.spec_url, request.filters, request.replay_of, request.template
                ),
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=FETCH_SPEC_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type == SPEC_INVALID):
                raise  # not the spec's fault (the database, say): the run fails saying so
            reason = str(cause)
            await log.record(EventType.SPEC_INVALID, {"reason": reason, "spec_url": request.spec_url})
            raise ApplicationError(
                f"the spec is not usable: {reason}", type="SpecInvalid", non_retryable=True
            ) from None
        self.total = len(spec.operations)
        log.run.state = "Executing"
        log.run.summary = {"operations": self.total, "done": 0, "failed": 0}
        await log.record(
            EventType.SPEC_FETCHED,
            {
                "version": spec.version,
                "title": spec.title,
                "operations": self.total,
                "operations_with_spec_problems": spec.problems,
                "replayed_scenarios": spec.replayed_scenarios,
            },
        )
        generator = "replay" if request.replay_of else request.generator
        stats = {"scenarios": 0, "fallbacks": 0, "tokens": 0}
        await self._execute(request, spec.operations, generator, stats)
        await log.record(
            EventType.AI_SUCCESS,
            {
                "generator": generator,
                "scenarios": stats["scenarios"],
                "fallbacks": stats["fallbacks"],
                "tokens": stats["tokens"],
            },
        )
        log.run.state = "Evaluating"
        evaluation = await workflow.execute_activity_method(
            QaDbActivities.evaluate_qa,
            EvaluateQaInput(run_id, request.min_pass_rate, request.known_failures),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=DB_RETRY,
        )
        log.run.verdict = evaluation.verdict
        log.run.state = "Done"
        log.run.summary = {
            "operations": evaluation.operations,
            "passed": evaluation.passed,
            "failed": evaluation.failed,
            "pass_rate": evaluation.pass_rate,
            "new_failures": len(evaluation.new_failures),
        }
        await log.record(
            EventType.QA_EVAL_DONE,
            {
                "verdict": evaluation.verdict,
                "pass_rate": evaluation.pass_rate,
                "min_pass_rate": request.min_pass_rate,
                "operations": evaluation.operations,
                "passed": evaluation.passed,
                "failed": evaluation.failed,
                "new_failures": evaluation.new_failures[:50],
                "known_failures_seen": evaluation.known_failures_seen,
            },
        )
        await log.close(
            EventType.COMPLETE, {"verdict": evaluation.verdict, "pass_rate": evaluation.pass_rate}
        )
        return QaPackageRunResult(
            verdict=evaluation.verdict,
            pass_rate=evaluation.pass_rate,
            operations=evaluation.operations,
            passed=evaluation.passed,
            failed=evaluation.failed,
            new_failures=len(evaluation.new_failures),
        )

    async def _execute(
        self, request: QaPackageRunInput, operations: list[str], generator: str, stats: dict[str, int]
    ) -> None:
        lanes = 2 if request.concurrency >= 2 and len(operations) > 1 else 1
        batches = plan_batches(operations, lanes)
        queue = list(reversed(batches))

        async def lane(concurrency: int) -> None:
            while queue:
                batch = queue.pop()
                sources = {}
                if generator == "llm":
                    sources = await self._generate(request, batch, concurrency, lanes, stats)
                outcomes = await workflow.execute_activity_method(
                    QaHttpActivities.execute_operations,
                    ExecuteOperationsInput(
                        run_id=workflow.info().workflow_id,
                        operations=batch,
                        base_url=request.base_url,
                        headers_secret=request.headers_secret,
                        seed=request.seed,
                        concurrency=concurrency,
                        request_timeout_s=request.request_timeout_s,
                        max_response_time_ms=request.max_response_time_ms,
                        follow_redirects=request.follow_redirects,
                    ),
                    # A bound no healthy batch meets (its heartbeat is what notices a dead worker).
                    start_to_close_timeout=timedelta(
                        seconds=60 + 30 * len(batch) * request.request_timeout_s
                    ),
                    heartbeat_timeout=BATCH_HEARTBEAT_TIMEOUT,
                    retry_policy=EXECUTE_RETRY,
                )
                for outcome in outcomes.outcomes:
                    self._record_outcome(outcome, sources.get(outcome.operation, generator), stats)
                assert self.log is not None
                await self.log.flush()

        share = [
            request.concurrency // lanes + (1 if i < request.concurrency % lanes else 0) for i in range(lanes)
        ]
        # A lane that fails stops the others: no requests go on after the run has failed.
        tasks = [asyncio.ensure_future(lane(max(1, c))) for c in share]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    def _record_outcome(self, outcome: OperationOutcome, generator: str, stats: dict[str, int]) -> None:
        log = self.log
        assert log is not None
        stats["scenarios"] += outcome.scenarios
        log.emit(
            EventType.SCENARIO_CREATED,
            {"operation": outcome.operation, "scenarios": outcome.scenarios, "generator": generator},
        )
        self.done += 1
        if outcome.passed:
            log.emit(
                EventType.EXECUTION_SUCCESS,
                {
                    "operation": outcome.operation,
                    "scenarios": outcome.scenarios,
                    "statuses": outcome.statuses,
                },
            )
        else:
            self.failed += 1
            log.emit(
                EventType.EXECUTION_FAILED,
                {
                    "operation": outcome.operation,
                    "scenarios": outcome.scenarios,
                    "statuses": outcome.statuses,
                    "failed_checks": outcome.failed_checks,
                },
            )
        log.run.summary = {"operations": self.total, "done": self.done, "failed": self.failed}

    async def _generate(
        self,
        request: QaPackageRunInput,
        batch: list[str],
        concurrency: int,
        lanes: int,
        stats: dict[str, int],
    ) -> dict[str, str]:
        """LLM scenarios for each operation of ``batch``; which generator made each one's."""
        log = self.log
        assert log is not None
        try:
            generated = await workflow.execute_activity_method(
                AiActivities.generate_scenarios,
                GenerateScenariosInput(
                    run_id=workflow.info().workflow_id,
                    operations=batch,
                    attempts=request.ai_attempts,
                    # Lanes run at once: each may spend its share of what is left.
                    token_budget=max(0, request.ai_token_budget - stats["tokens"]) // lanes,
                    concurrency=concurrency,
                ),
                start_to_close_timeout=timedelta(minutes=10 + 2 * len(batch)),
                heartbeat_timeout=GENERATE_HEARTBEAT_TIMEOUT,
                retry_policy=GENERATE_RETRY,
            )
        except ActivityError as exc:  # generation itself broke: the schema generator steps in
            reason = f"scenario generation failed: {exc.cause or exc}"
            generated = GenerateScenariosResult([GeneratedScenarios(key, fallback=reason) for key in batch])
        sources: dict[str, str] = {}
        for outcome in generated.operations:
            stats["tokens"] += outcome.tokens
            for attempt, reason in enumerate(outcome.failures, start=1):
                log.emit(
                    EventType.AI_FAILED,
                    {
                        "operation": outcome.operation,
                        "attempt": attempt,
                        "of": request.ai_attempts,
                        "reason": reason,
                    },
                )
            if outcome.fallback is None:
                sources[outcome.operation] = "llm"
                continue
            stats["fallbacks"] += 1
            sources[outcome.operation] = "schema"
            log.emit(
                EventType.AI_FALLBACK,
                {"operation": outcome.operation, "reason": outcome.fallback, "generator": "schema"},
            )
        await log.flush()
        return sources

    @workflow.query
    def progress(self) -> dict[str, int]:
        """Operations done and total, and how many failed."""
        return {"operations": self.total, "done": self.done, "failed": self.failed}
