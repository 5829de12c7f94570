"""Batch jobs: start one, and resume a failed or cancelled one from its last checkpoint."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from crucible.api.access import NewInTeam, RunAccess
from crucible.api.batch_models import BatchJobAccepted, BatchJobCreate, BatchJobLinks
from crucible.api.deps import RunServiceDep, SecretsDep, SettingsDep, TemporalDep
from crucible.api.kinds import register_kind
from crucible.api.routes.runs import API_PREFIX
from crucible.api.service import temporal_answers
from crucible.api.starts import StarterDep
from crucible.core.auth import Role
from crucible.core.batch.models import (
    BatchCheckpoint,
    BatchJobInput,
    BatchJobRequest,
    BatchPlan,
    shown_location,
)
from crucible.core.config import Settings
from crucible.core.errors import ConflictError
from crucible.core.runs import RunStatus, new_run_id
from crucible.core.secrets import SecretStore
from crucible.core.tables import Run
from crucible.core.temporal import workflow_ui_url
from crucible.workflows.batch_job import KIND, BatchJobWorkflow

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/batch-jobs", tags=["batch"])
register_kind(KIND, progress=BatchJobWorkflow.progress)

#: A job in one of these may be resumed; a running or completed one may not.
RESUMABLE = {RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TERMINATED, RunStatus.TIMED_OUT}


async def batch_request(body: BatchJobCreate, secrets: SecretStore) -> BatchJobRequest:
    """The workflow's view of ``body``: header values, and an input URL with credentials or a
    query, sealed in the secret store."""
    headers_secret = input_secret = None
    shown = shown_location(body.input)
    if body.headers:
        headers_secret = await secrets.put(body.headers, prefix="headers")
    if shown != body.input:
        input_secret = await secrets.put(body.input, prefix="input")
    return BatchJobRequest(
        input=shown,
        input_secret=input_secret,
        processor=body.processor,
        output=body.output,
        format=body.format,
        chunk_size=body.chunk_size,
        max_chunk_retries=body.max_chunk_retries,
        on_chunk_failure=body.on_chunk_failure,
        options=body.options,
        headers_secret=headers_secret,
        header_names=sorted(body.headers),
        chunk_retry_delay_s=body.chunk_retry_delay_s,
    )


def batch_input(
    settings: Settings,
    request: BatchJobRequest,
    *,
    job_id: str,
    resumed_from: str | None = None,
    plan: BatchPlan | None = None,
    checkpoint: BatchCheckpoint | None = None,
) -> BatchJobInput:
    return BatchJobInput(
        job_id=job_id,
        request=request,
        resumed_from=resumed_from,
        plan=plan,
        checkpoint=checkpoint,
        segment_s=settings.batch_segment_s,
        heartbeat_timeout_s=settings.batch_heartbeat_timeout_s,
        task_queue=settings.effective_batch_task_queue,
    )


def accepted(run_id: str, settings: Settings, *, resumed_from: str | None = None) -> BatchJobAccepted:
    base = f"{API_PREFIX}/runs/{run_id}"
    return BatchJobAccepted(
        run_id=run_id,
        resumed_from=resumed_from,
        links=BatchJobLinks(
            status=base,
            events=f"{base}/events",
            stream=f"{base}/events/stream",
            resume=f"{API_PREFIX}/batch-jobs/{run_id}/resume",
            temporal_ui=workflow_ui_url(settings, run_id),
        ),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchJobAccepted,
    summary="Start a batch job over a CSV or JSON Lines file",
    responses={
        403: {"description": "The input or output is outside the folders batch jobs may use"},
        422: {"description": "The request or the processor's options are invalid; every error listed"},
    },
)
async def create_batch_job(
    body: BatchJobCreate, team: NewInTeam, secrets: SecretsDep, starter: StarterDep, settings: SettingsDep
) -> BatchJobAccepted:
    body.check(settings.batch_paths, "body")
    run_id = new_run_id(KIND)
    arg = batch_input(settings, await batch_request(body, secrets), job_id=run_id)
    await starter.start(BatchJobWorkflow.run, arg, kind=KIND, owner=team, run_id=run_id)
    log.info("started batch job %s: %s over %s", run_id, body.processor, shown_location(body.input))
    return accepted(run_id, settings)


@router.post(
    "/{run_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchJobAccepted,
    summary="Carry a failed or cancelled job on from its last checkpoint, as a new run",
    responses={
        404: {"description": "No such batch job"},
        409: {"description": "Running, completed or resumed"},
    },
)
async def resume_batch_job(
    job: Annotated[Run, Depends(RunAccess(Role.runner, kind=KIND))],
    runs: RunServiceDep,
    temporal: TemporalDep,
    starter: StarterDep,
    settings: SettingsDep,
) -> BatchJobAccepted:
    run_id = job.run_id
    run = await runs.refresh(job, force=True)
    if RunStatus(run.status) not in RESUMABLE:
        raise ConflictError(f"batch job {run_id} is {run.status}; only a failed or cancelled job is resumed")
    with temporal_answers():
        point = await temporal.get_workflow_handle(run_id).query(BatchJobWorkflow.resume_point)
    # One resume per run: its id follows from the run's, and Temporal refuses it twice.
    new_id = new_run_id(KIND, unique=uuid.uuid5(uuid.NAMESPACE_URL, f"crucible:resume:{run_id}"))
    arg = batch_input(
        settings,
        point.request,
        job_id=point.job_id,
        resumed_from=run_id,
        plan=point.plan,
        checkpoint=point.checkpoint,
    )
    try:
        await starter.start(
            BatchJobWorkflow.run,
            arg,
            kind=KIND,
            owner=run,
            run_id=new_id,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise ConflictError(f"batch job {run_id} has been resumed already, as {new_id}") from None
    done = point.checkpoint.next_chunk if point.checkpoint else 0
    log.info("resumed batch job %s as %s from chunk %d", run_id, new_id, done)
    return accepted(new_id, settings, resumed_from=run_id)
