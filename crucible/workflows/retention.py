"""Retention: a Temporal Schedule starts this workflow to delete runs closed long ago."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from crucible.activities.retention import RetentionActivities
    from crucible.core.retention import RETENTION_WORKFLOW, PruneRunsInput, PruneRunsResult, RetentionInput

__all__ = ["RetentionInput", "RetentionWorkflow"]

PRUNE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5), maximum_attempts=10
)


@workflow.defn(name=RETENTION_WORKFLOW)
class RetentionWorkflow:
    @workflow.run
    async def run(self, request: RetentionInput) -> PruneRunsResult:
        """Delete runs that closed more than ``older_than_days`` days before this run started."""
        if request.older_than_days <= 0:
            return PruneRunsResult()
        closed_before = workflow.now() - timedelta(days=request.older_than_days)
        return await workflow.execute_activity_method(
            RetentionActivities.prune_runs,
            PruneRunsInput(closed_before=closed_before, batch_size=request.batch_size),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=PRUNE_RETRY,
        )
