"""Schedules: Temporal Schedules that start QA runs, batch jobs and pipelines.

Each schedule is a Temporal Schedule with a readable id (its name, slugified), so it is
the same one in ``temporal schedule list`` and the Web UI. Runs it starts have ids
``<kind>-<schedule id>-<action time>`` and are read like any other run.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from crucible.api import batch_schedule, qa_schedule  # noqa: F401  (they register their targets)
from crucible.api.deps import SettingsDep, TemporalDep
from crucible.api.routes.runs import API_PREFIX
from crucible.api.schedule_models import (
    ScheduleActionAccepted,
    ScheduleBackfill,
    ScheduleCreate,
    ScheduleList,
    ScheduleNote,
    SchedulePublic,
    ScheduleTrigger,
)
from crucible.api.schedule_targets import TARGETS
from crucible.core import schedules
from crucible.core.config import Settings
from crucible.core.errors import (
    ConflictError,
    InvalidRequestError,
    ScheduleExistsError,
    ScheduleNotFoundError,
)
from crucible.core.schedules import ScheduleView
from crucible.core.schedules.options import RESERVED_PREFIX

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/schedules", tags=["schedules"])

ScheduleIdPath = Annotated[str, Path(description="The schedule's id, e.g. `nightly-orders`.", max_length=200)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such schedule"}}


def _yours(schedule_id: str) -> None:
    """Crucible's own schedules (retention) are read here, and changed by its settings only."""
    if schedule_id.startswith(RESERVED_PREFIX):
        raise ConflictError(
            f"schedule {schedule_id!r} is Crucible's own; its settings change it (CRUCIBLE_RETENTION_*)"
        )


def _public(view: ScheduleView, settings: Settings) -> SchedulePublic:
    return SchedulePublic.of(view, api_prefix=API_PREFIX, settings=settings)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SchedulePublic,
    summary="Create a schedule that starts a QA run, a batch job or a pipeline",
    responses={
        409: {"description": "A schedule with this name exists"},
        422: {"description": "A bad cron expression, time zone, target, …; every error is listed"},
    },
)
async def create_schedule(
    body: ScheduleCreate, request: Request, temporal: TemporalDep, settings: SettingsDep
) -> SchedulePublic:
    schedule_id = body.schedule_id
    try:  # refuse a taken name before anything is stored for the new schedule
        await schedules.describe_schedule(temporal, schedule_id)
        raise ScheduleExistsError(schedule_id)
    except ScheduleNotFoundError:
        pass
    target = TARGETS[body.target.kind]
    start = await target.build(body.target, request)
    try:
        view = await schedules.create_schedule(temporal, schedule_id, start, body.options())
    except BaseException:
        if target.forget is not None:
            await target.forget(start.summary, request)
        raise
    log.info(
        "created schedule %s starting %s runs (%s)", schedule_id, start.kind, body.cron or body.interval_s
    )
    return _public(view, settings)


@router.get("", response_model=ScheduleList, summary="List schedules")
async def list_schedules(
    temporal: TemporalDep,
    settings: SettingsDep,
    kind: Annotated[str | None, Query(description="Only schedules that start runs of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> ScheduleList:
    if kind is not None and kind not in TARGETS:
        raise InvalidRequestError.one(
            ("query", "kind"), f"unknown kind {kind!r}; one of: {', '.join(sorted(TARGETS))}"
        )
    page = await schedules.list_schedules(temporal, kind=kind, limit=limit, cursor=cursor)
    return ScheduleList(items=[_public(view, settings) for view in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{schedule_id}",
    response_model=SchedulePublic,
    summary="A schedule's spec, state, next action times and recent runs",
    responses=_NOT_FOUND,
)
async def get_schedule(
    schedule_id: ScheduleIdPath, temporal: TemporalDep, settings: SettingsDep
) -> SchedulePublic:
    return _public(await schedules.describe_schedule(temporal, schedule_id), settings)


@router.post(
    "/{schedule_id}/pause", response_model=SchedulePublic, summary="Pause a schedule", responses=_NOT_FOUND
)
async def pause_schedule(
    schedule_id: ScheduleIdPath,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: ScheduleNote | None = None,
) -> SchedulePublic:
    _yours(schedule_id)
    view = await schedules.pause_schedule(temporal, schedule_id, note=body.note if body else None)
    return _public(view, settings)


@router.post(
    "/{schedule_id}/unpause",
    response_model=SchedulePublic,
    summary="Unpause a schedule",
    responses=_NOT_FOUND,
)
async def unpause_schedule(
    schedule_id: ScheduleIdPath,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: ScheduleNote | None = None,
) -> SchedulePublic:
    _yours(schedule_id)
    view = await schedules.unpause_schedule(temporal, schedule_id, note=body.note if body else None)
    return _public(view, settings)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScheduleActionAccepted,
    summary="Start a run now, paused or not",
    responses=_NOT_FOUND,
)
async def trigger_schedule(
    schedule_id: ScheduleIdPath, temporal: TemporalDep, body: ScheduleTrigger | None = None
) -> ScheduleActionAccepted:
    _yours(schedule_id)
    await schedules.trigger_schedule(temporal, schedule_id, overlap=body.overlap if body else None)
    return ScheduleActionAccepted(schedule_id=schedule_id, detail="triggered")


@router.post(
    "/{schedule_id}/backfill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScheduleActionAccepted,
    summary="Take the actions of a period now",
    responses={
        **_NOT_FOUND,
        422: {"description": "end is not after start, or the period holds too many actions"},
    },
)
async def backfill_schedule(
    schedule_id: ScheduleIdPath, body: ScheduleBackfill, temporal: TemporalDep
) -> ScheduleActionAccepted:
    _yours(schedule_id)
    actions = await schedules.backfill_schedule(
        temporal, schedule_id, start=body.start, end=body.end, overlap=body.overlap
    )
    return ScheduleActionAccepted(schedule_id=schedule_id, detail="backfill requested", actions=actions)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a schedule; runs it started go on",
    responses={**_NOT_FOUND, 409: {"description": "One of Crucible's own schedules"}},
)
async def delete_schedule(schedule_id: ScheduleIdPath, request: Request, temporal: TemporalDep) -> Response:
    _yours(schedule_id)
    view = await schedules.delete_schedule(temporal, schedule_id)
    target = TARGETS.get(view.kind or "")
    if target is not None and target.forget is not None:
        await target.forget(view.target, request)
    log.info("deleted schedule %s", schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
