"""Pipeline runs (seed 002, diagram 4): each step a child workflow, in order.

A batch step is a batch job run of its own (``batch-…``, with its own events); validate and
notify steps run as :class:`PipelineStepWorkflow` children. A step that fails stops the
pipeline: the run records ``STEP_FAILED`` with the reason, then fails.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError, is_cancelled_exception
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from crucible.activities.pipelines import PipelineActivities
    from crucible.core.batch.models import BatchJobInput
    from crucible.core.events import EventType
    from crucible.core.pipelines.models import (
        LoadPipelineInput,
        PipelineRunInput,
        PipelineRunResult,
        PipelineStep,
        PostWebhookInput,
        StepInput,
        StepResult,
        check,
        webhook_payload,
    )
    from crucible.core.runs import new_run_id
    from crucible.core.temporal import run_search_attributes
    from crucible.workflows.batch_job import BatchJobWorkflow
    from crucible.workflows.events import RunEventLog

KIND = "pipeline"
LOAD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=10)
WEBHOOK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5)


def _reason(exc: BaseException) -> str:
    """The innermost message of a child's failure: what actually went wrong."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc)


@workflow.defn
class PipelineStepWorkflow:
    """A validate or notify step of a pipeline run."""

    @workflow.run
    async def run(self, request: StepInput) -> StepResult:
        step = request.step
        if step.type == "validate":
            outcomes = [check(a, request.previous) for a in step.assertions]
            failed = [o for o in outcomes if not o["passed"]]
            if failed:
                raise ApplicationError(
                    f"{len(failed)} of {len(outcomes)} assertions failed: "
                    + "; ".join(o.get("reason") or f"{o['path']} {o['op']}" for o in failed),
                    {"assertions": outcomes},
                    type="AssertionsFailed",
                    non_retryable=True,
                )
            return StepResult(True, {"assertions": outcomes})
        if step.type == "notify":
            assert step.webhook_secret is not None
            payload = webhook_payload(
                request.pipeline_name, request.pipeline_run_id, request.results, step.text
            )
            status = await workflow.execute_activity_method(
                PipelineActivities.post_webhook,
                PostWebhookInput(step.webhook_secret, payload),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=WEBHOOK_RETRY,
            )
            return StepResult(True, {"status": status, "host": step.webhook_host})
        raise ApplicationError(f"unknown step type {step.type!r}", type="StepInvalid", non_retryable=True)


@workflow.defn
class PipelineRunWorkflow:
    def __init__(self) -> None:
        self.log: RunEventLog | None = None

    @workflow.run
    async def run(self, request: PipelineRunInput) -> PipelineRunResult:
        self.log = RunEventLog(kind=KIND)
        return await self.log.guard(lambda: self._run(request))

    async def _run(self, request: PipelineRunInput) -> PipelineRunResult:
        log = self.log
        assert log is not None
        log.run.state = "Loading"
        definition = await workflow.execute_activity_method(
            PipelineActivities.load_pipeline,
            LoadPipelineInput(request.pipeline_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOAD_RETRY,
        )
        steps = [{"name": s.name, "type": s.type} for s in definition.steps]
        log.run.summary = {
            "pipeline_id": definition.pipeline_id,
            "name": definition.name,
            "steps": len(steps),
        }
        await log.record(
            EventType.REQUESTED,
            {"pipeline_id": definition.pipeline_id, "name": definition.name, "steps": steps},
        )
        previous: dict[str, Any] | None = None
        results: list[dict[str, Any]] = []
        for index, step in enumerate(definition.steps, start=1):
            log.run.state = f"Step{index}_Running"
            child_id = self._child_id(index, step)
            await log.record(
                EventType.STEP_STARTED,
                {"index": index, "step": step.name, "type": step.type, "child_id": child_id},
            )
            try:
                previous = await self._step(
                    request, definition.name, index, step, child_id, previous, results
                )
            except ChildWorkflowError as exc:
                if is_cancelled_exception(exc):  # the pipeline run itself is being cancelled
                    raise
                reason = _reason(exc)
                log.run.state = f"Step{index}_Failed"
                await log.record(
                    EventType.STEP_FAILED,
                    {
                        "index": index,
                        "step": step.name,
                        "type": step.type,
                        "child_id": child_id,
                        "reason": reason,
                    },
                )
                raise ApplicationError(
                    f"step {index} ({step.name}) failed: {reason}", type="StepFailed", non_retryable=True
                ) from None
            results.append({"step": step.name, "type": step.type, "child_id": child_id, "outcome": "passed"})
            await log.record(
                EventType.STEP_COMPLETED,
                {
                    "index": index,
                    "step": step.name,
                    "type": step.type,
                    "child_id": child_id,
                    "result": previous,
                },
            )
        log.run.state = "Completed"
        log.run.summary = {**log.run.summary, "steps_done": len(results)}
        await log.close(EventType.COMPLETE, {"steps": results})
        return PipelineRunResult(definition.pipeline_id, results)

    def _child_id(self, index: int, step: PipelineStep) -> str:
        if step.type == "batch":  # a batch job run of its own, listed with the others
            return new_run_id("batch", unique=workflow.uuid4())
        return f"{workflow.info().workflow_id}-step{index}-{step.type}"

    async def _step(
        self,
        request: PipelineRunInput,
        name: str,
        index: int,
        step: PipelineStep,
        child_id: str,
        previous: dict[str, Any] | None,
        results: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Run one step as a child workflow; what it returns is the next step's ``previous``."""
        assert self.log is not None
        run = self.log.run
        if step.type == "batch":
            assert step.batch is not None
            batch = await workflow.execute_child_workflow(
                BatchJobWorkflow.run,
                BatchJobInput(
                    job_id=child_id,
                    request=step.batch,
                    segment_s=request.segment_s,
                    heartbeat_timeout_s=request.heartbeat_timeout_s,
                    task_queue=request.batch_task_queue,
                ),
                id=child_id,
                search_attributes=run_search_attributes(kind="batch", org_id=run.org_id, team_id=run.team_id),
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            )
            return dataclasses.asdict(batch)
        result = await workflow.execute_child_workflow(
            PipelineStepWorkflow.run,
            StepInput(workflow.info().workflow_id, name, index, step, previous, results),
            id=child_id,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        return {"passed": result.passed, **result.detail}
