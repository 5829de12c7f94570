"""Pipelines: define one, list and read them, delete one, and run one now."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Response, status

from crucible.api.access import NewInTeam, RunnerPipeline, ViewPipeline
from crucible.api.auth_deps import PrincipalDep
from crucible.api.deps import PipelineStoreDep, SecretsDep, SettingsDep
from crucible.api.models import CursorQuery
from crucible.api.pipeline_models import (
    BatchStep,
    NotifyStep,
    PipelineCreate,
    PipelineList,
    PipelinePublic,
    PipelineRunAccepted,
    ValidateStep,
)
from crucible.api.routes.batch import batch_request
from crucible.api.routes.runs import API_PREFIX
from crucible.api.starts import StarterDep
from crucible.core.config import Settings
from crucible.core.errors import NotFoundError
from crucible.core.pipelines.models import Assertion, PipelineDefinition, PipelineRunInput, PipelineStep
from crucible.core.secrets import SecretStore
from crucible.core.temporal import workflow_ui_url
from crucible.workflows.pipeline import KIND, PipelineRunWorkflow

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/pipelines", tags=["pipelines"])


def new_pipeline_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return f"pl-{slug + '-' if slug else ''}{uuid.uuid4().hex[:6]}"


async def _steps(body: PipelineCreate, secrets: SecretStore) -> list[PipelineStep]:
    steps = []
    for step in body.steps:
        name = step.name or step.type
        if isinstance(step, BatchStep):
            steps.append(PipelineStep(name, "batch", batch=await batch_request(step.job, secrets)))
        elif isinstance(step, ValidateStep):
            assertions = [Assertion(a.path, a.op, a.value) for a in step.assertions]
            steps.append(PipelineStep(name, "validate", assertions=assertions))
        elif isinstance(step, NotifyStep):
            secret = await secrets.put(step.webhook_url, prefix="webhook")
            host = urlsplit(step.webhook_url).hostname
            steps.append(
                PipelineStep(name, "notify", webhook_secret=secret, webhook_host=host, text=step.text)
            )
    return steps


def pipeline_input(settings: Settings, pipeline_id: str) -> PipelineRunInput:
    return PipelineRunInput(
        pipeline_id=pipeline_id,
        batch_task_queue=settings.effective_batch_task_queue,
        segment_s=settings.batch_segment_s,
        heartbeat_timeout_s=settings.batch_heartbeat_timeout_s,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PipelinePublic,
    summary="Define a pipeline of batch, validate and notify steps",
    responses={
        403: {"description": "A batch step's input or output is outside the folders batch jobs may use"},
        422: {"description": "A step is invalid; every error is listed"},
    },
)
async def create_pipeline(
    body: PipelineCreate, team: NewInTeam, store: PipelineStoreDep, secrets: SecretsDep, settings: SettingsDep
) -> PipelinePublic:
    body.check(settings.batch_paths)
    definition = PipelineDefinition(new_pipeline_id(body.name), body.name, await _steps(body, secrets))
    row = await store.create(definition, org_id=team.org_id, team_id=team.team_id)
    log.info("defined pipeline %s (%s) with %d steps", row.pipeline_id, row.name, len(row.steps))
    return PipelinePublic.of(row, api_prefix=API_PREFIX)


@router.get("", response_model=PipelineList, summary="List your teams' pipelines, newest first")
async def list_pipelines(
    store: PipelineStoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: CursorQuery = None,
) -> PipelineList:
    page = await store.page(team_ids=principal.team_ids(), limit=limit, cursor=cursor or None)
    return PipelineList(
        items=[PipelinePublic.of(row, api_prefix=API_PREFIX) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{pipeline_id}", response_model=PipelinePublic, summary="A pipeline's definition")
async def get_pipeline(row: ViewPipeline) -> PipelinePublic:
    return PipelinePublic.of(row, api_prefix=API_PREFIX)


@router.delete(
    "/{pipeline_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a pipeline; runs already started go on, later triggers fail",
)
async def delete_pipeline(pipeline: RunnerPipeline, store: PipelineStoreDep, secrets: SecretsDep) -> Response:
    held = await store.delete(pipeline.pipeline_id)
    if held is None:  # deleted in between
        raise NotFoundError("pipeline", pipeline.pipeline_id)
    await secrets.delete(held)  # runs already going read their steps when they started
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{pipeline_id}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PipelineRunAccepted,
    summary="Run a pipeline now",
)
async def run_pipeline(
    pipeline: RunnerPipeline, starter: StarterDep, settings: SettingsDep
) -> PipelineRunAccepted:
    pipeline_id = pipeline.pipeline_id
    handle = await starter.start(
        PipelineRunWorkflow.run, pipeline_input(settings, pipeline_id), kind=KIND, owner=pipeline
    )
    run_id = handle.id
    base = f"{API_PREFIX}/runs/{run_id}"
    return PipelineRunAccepted(
        run_id=run_id,
        pipeline_id=pipeline_id,
        links={
            "status": base,
            "events": f"{base}/events",
            "stream": f"{base}/events/stream",
            "temporal_ui": workflow_ui_url(settings, run_id),
        },
    )
