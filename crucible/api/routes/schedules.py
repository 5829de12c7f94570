"""Schedules: Temporal Schedules that start QA runs, batch jobs and pipelines.

Each schedule is a Temporal Schedule with a readable id (its name, slugified), so it is
the same one in ``temporal schedule list`` and the Web UI. Runs it starts have ids
``<kind>-<schedule id>-<action time>`` and are read like any other run.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request, Response, status

from crucible.api import batch_schedule, qa_schedule  # noqa: F401  (they register their targets)
from crucible.api.access import NewInTeam, RunnerSchedule, ViewSchedule
from crucible.api.auth_deps import PrincipalDep
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
    ScheduleExistsError,
    ScheduleNotFoundError,
)
from crucible.core.schedules import ScheduleView
from crucible.core.schedules.options import RESERVED_PREFIX

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/schedules", tags=["schedules"])
ScheduleKind = Literal["batch", "pipeline", "qa"]
assert set(get_args(ScheduleKind)) == set(TARGETS), "a schedule target without its kind here"

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such schedule"}}


def _yours(schedule: ScheduleView) -> str:
    """The schedule's id, for a change; Crucible's own schedules (retention) change with its settings only."""
    schedule_id = schedule.schedule_id
    if schedule_id.startswith(RESERVED_PREFIX):
        raise ConflictError(
            f"schedule {schedule_id!r} is Crucible's own; its settings change it (CRUCIBLE_RETENTION_*)"
        )
    return schedule_id


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
    body: ScheduleCreate, team: NewInTeam, request: Request, temporal: TemporalDep, settings: SettingsDep
) -> SchedulePublic:
    schedule_id = body.schedule_id
    try:  # refuse a taken name before anything is stored for the new schedule
        await schedules.describe_schedule(temporal, schedule_id)
        raise ScheduleExistsError(schedule_id)
    except ScheduleNotFoundError:
        pass
    target = TARGETS[body.target.kind]
    start = dataclasses.replace(
        await target.build(body.target, request, team), org_id=team.org_id, team_id=team.team_id
    )
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


@router.get("", response_model=ScheduleList, summary="List your teams' schedules")
async def list_schedules(
    temporal: TemporalDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    kind: Annotated[
        ScheduleKind | None, Query(description="Only schedules that start runs of this kind.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9._-]{0,200}$",
            description="`next_cursor` of the previous page: the schedule id the page starts after.",
        ),
    ] = None,
) -> ScheduleList:
    page = await schedules.list_schedules(
        temporal, team_ids=principal.team_ids(), kind=kind, limit=limit, after=cursor or None
    )
    return ScheduleList(items=[_public(view, settings) for view in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{schedule_id}",
    response_model=SchedulePublic,
    summary="A schedule's spec, state, next action times and recent runs",
    responses=_NOT_FOUND,
)
async def get_schedule(schedule: ViewSchedule, settings: SettingsDep) -> SchedulePublic:
    return _public(schedule, settings)


@router.post(
    "/{schedule_id}/pause", response_model=SchedulePublic, summary="Pause a schedule", responses=_NOT_FOUND
)
async def pause_schedule(
    schedule: RunnerSchedule,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: ScheduleNote | None = None,
) -> SchedulePublic:
    schedule_id = _yours(schedule)
    view = await schedules.pause_schedule(temporal, schedule_id, note=body.note if body else None)
    return _public(view, settings)


@router.post(
    "/{schedule_id}/unpause",
    response_model=SchedulePublic,
    summary="Unpause a schedule",
    responses=_NOT_FOUND,
)
async def unpause_schedule(
    schedule: RunnerSchedule,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: ScheduleNote | None = None,
) -> SchedulePublic:
    schedule_id = _yours(schedule)
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
    schedule: RunnerSchedule, temporal: TemporalDep, body: ScheduleTrigger | None = None
) -> ScheduleActionAccepted:
    schedule_id = _yours(schedule)
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
    schedule: RunnerSchedule, body: ScheduleBackfill, temporal: TemporalDep
) -> ScheduleActionAccepted:
    schedule_id = _yours(schedule)
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
async def delete_schedule(schedule: RunnerSchedule, request: Request, temporal: TemporalDep) -> Response:
    schedule_id = _yours(schedule)
    view = await schedules.delete_schedule(temporal, schedule_id)
    target = TARGETS.get(view.kind or "")
    if target is not None and target.forget is not None:
        await target.forget(view.target, request)
    log.info("deleted schedule %s", schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
