"""Runs a Temporal Schedule starts are admitted against their team's quotas, as the API's are.

The API admits each run before it starts it (:mod:`crucible.core.quotas`). A schedule starts
its runs itself, so a workflow interceptor admits them: before the workflow's own code, a
run that carries ``TemporalScheduledById`` and a ``CrucibleTeam`` runs one activity that
admits it. A run over a quota fails there, before its first step, with an error of type
``QuotaExceeded`` that names the quota; its log holds ``REQUESTED`` and a ``FAILED`` that
says the same, and its schedule's ``pause_on_failure`` applies to it.
The run continued from it (continue-as-new) is the same run, admitted already.

Histories recorded before this interceptor replay as they ran: the admission sits behind a
``workflow.patched`` marker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from crucible.activities.quotas import QUOTA_EXCEEDED, AdmitScheduledRun, QuotaActivities
    from crucible.core.events import EventType
    from crucible.core.temporal import KIND_KEY, TEAM_KEY
    from crucible.workflows.events import RunEventLog

#: Set by Temporal on the runs a schedule starts.
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")
PATCH = "admit-scheduled-runs"


class ScheduledAdmission(Interceptor):
    """Admits the runs a schedule starts against their team's quotas."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _AdmitScheduledRuns


class _AdmitScheduledRuns(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        schedule_id = info.typed_search_attributes.get(SCHEDULED_BY)
        team_id = info.typed_search_attributes.get(TEAM_KEY)
        if schedule_id and team_id and info.continued_run_id is None and workflow.patched(PATCH):
            try:
                await workflow.execute_activity_method(
                    QuotaActivities.admit_scheduled_run,
                    AdmitScheduledRun(run_id=info.workflow_id, team_id=team_id, schedule_id=schedule_id),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(
                        maximum_interval=timedelta(seconds=10), non_retryable_error_types=[QUOTA_EXCEEDED]
                    ),
                )
            except ActivityError as exc:
                refusal = exc.cause
                if not (isinstance(refusal, ApplicationError) and refusal.type == QUOTA_EXCEEDED):
                    raise
                # The run is in Crucible's list, failed, and says why; it fails with the
                # refusal itself, which the Web UI shows first.
                # The schedule gave it CrucibleKind along with CrucibleTeam.
                log = RunEventLog(kind=info.typed_search_attributes.get(KIND_KEY) or "run")
                log.emit(EventType.REQUESTED, {"schedule_id": schedule_id})
                await log.close(EventType.FAILED, {"reason": QUOTA_EXCEEDED, "message": refusal.message})
                raise refusal from None
        return await self.next.execute_workflow(input)
