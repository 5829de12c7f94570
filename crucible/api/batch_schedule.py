"""Batch jobs and pipelines on a schedule: the ``batch`` and ``pipeline`` schedule targets.

A scheduled batch job's arguments are the same for every run, so it has no job id of its
own: each run is a job of its own, named after the run. A scheduled pipeline run reads the
pipeline's definition when it starts, so edits to the pipeline apply to the next run.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from crucible.api.batch_models import BatchJobCreate
from crucible.api.deps import get_pipeline_store, get_secrets, get_settings
from crucible.api.routes.batch import batch_input, batch_request
from crucible.api.routes.pipelines import pipeline_input
from crucible.api.schedule_targets import ScheduledStart, register_schedule_target
from crucible.core.auth import Membership
from crucible.core.batch.models import shown_location
from crucible.core.errors import NotFoundError
from crucible.workflows import batch_job, pipeline


class BatchScheduleTarget(BaseModel):
    """A batch job, as ``POST /api/v1/batch-jobs`` takes it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["batch"]
    job: BatchJobCreate = Field(description="The body of `POST /api/v1/batch-jobs`.")


class PipelineScheduleTarget(BaseModel):
    """A run of a pipeline defined with ``POST /api/v1/pipelines``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pipeline"]
    pipeline_id: str = Field(max_length=100, description="The pipeline's id, `pl-…`.")


async def build_batch(body: BatchScheduleTarget, request: Request, team: Membership) -> ScheduledStart:
    settings = get_settings(request)
    body.job.check(settings.batch_paths, "body", "target", "job")
    job = await batch_request(body.job, get_secrets(request))
    return ScheduledStart(
        kind=batch_job.KIND,
        workflow=batch_job.BatchJobWorkflow.run,
        arg=batch_input(settings, job, job_id=""),
        task_queue=settings.task_queue,
        summary={
            "kind": batch_job.KIND,
            "input": shown_location(job.input),
            "processor": job.processor,
            "output": job.output,
            "header_names": job.header_names,
            # Ids, not values: what to delete with the schedule.
            "secrets": [secret for secret in (job.headers_secret, job.input_secret) if secret],
        },
    )


async def forget_batch(summary: dict[str, Any], request: Request) -> None:
    """Delete the secrets the schedule's job held; runs it started have finished with them."""
    await get_secrets(request).delete(summary.get("secrets") or [])


async def build_pipeline(body: PipelineScheduleTarget, request: Request, team: Membership) -> ScheduledStart:
    row = await get_pipeline_store(request).get(body.pipeline_id)
    if row is None or row.team_id != team.team_id:
        raise NotFoundError("pipeline", body.pipeline_id)
    settings = get_settings(request)
    return ScheduledStart(
        kind=pipeline.KIND,
        workflow=pipeline.PipelineRunWorkflow.run,
        arg=pipeline_input(settings, body.pipeline_id),
        task_queue=settings.task_queue,
        summary={"kind": pipeline.KIND, "pipeline_id": row.pipeline_id, "name": row.name},
    )


register_schedule_target(batch_job.KIND, BatchScheduleTarget, build_batch, forget=forget_batch)
register_schedule_target(pipeline.KIND, PipelineScheduleTarget, build_pipeline)
