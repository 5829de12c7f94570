"""QA activities that only touch PostgreSQL: evaluating a run from its stored results."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.qa.evaluate import evaluate
from crucible.core.qa.models import EvaluateQaInput, EvaluateQaResult
from crucible.core.qa.store import QaStore


class QaDbActivities:
    def __init__(self, store: QaStore) -> None:
        self.store = store

    @activity.defn
    async def evaluate_qa(self, request: EvaluateQaInput) -> EvaluateQaResult:
        """Judge every operation from its stored results, store the evaluation, return its summary."""
        operations = await self.store.operations(request.run_id)
        if operations is None:
            raise ApplicationError(f"QA run {request.run_id} has no stored operations", non_retryable=True)
        evaluation = evaluate(
            operations,
            await self.store.operation_results(request.run_id),
            min_pass_rate=request.min_pass_rate,
            known_failures=request.known_failures,
        )
        await self.store.save_evaluation(request.run_id, evaluation)
        return EvaluateQaResult(
            verdict=evaluation["verdict"],
            pass_rate=evaluation["pass_rate"],
            operations=evaluation["operations"],
            passed=evaluation["passed"],
            failed=evaluation["failed"],
            new_failures=evaluation["new_failures"],
            known_failures_seen=len(evaluation["known_failures_seen"]),
        )
