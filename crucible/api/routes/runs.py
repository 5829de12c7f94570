"""Runs of every kind: list, read, cancel, signal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, status

from crucible.api.access import RunnerRun, ViewRun
from crucible.api.auth_deps import PrincipalDep
from crucible.api.deps import RunServiceDep, SettingsDep, StoreDep
from crucible.api.models import Accepted, CursorQuery, RunList, RunPublic
from crucible.core.config import Settings
from crucible.core.runs import RunStatus
from crucible.core.tables import Run
from crucible.core.temporal import workflow_ui_url

API_PREFIX = "/api/v1"

router = APIRouter(prefix=f"{API_PREFIX}/runs", tags=["runs"])


def public(run: Run, settings: Settings, progress: dict[str, Any] | None = None) -> RunPublic:
    return RunPublic.of(
        run, api_prefix=API_PREFIX, temporal_ui_url=workflow_ui_url(settings, run.run_id), progress=progress
    )


@router.get("", response_model=RunList, summary="List your teams' runs, newest first")
async def list_runs(
    store: StoreDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    kind: Annotated[
        str | None, Query(pattern="^[a-z]{1,32}$", description="Only runs of this kind (`qa`, `batch`, …).")
    ] = None,
    status_: Annotated[
        RunStatus | None, Query(alias="status", description="Only runs with this status.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: CursorQuery = None,
) -> RunList:
    page = await store.list_runs(
        team_ids=principal.team_ids(), kind=kind, status=status_, limit=limit, cursor=cursor or None
    )
    return RunList(items=[public(run, settings) for run in page.items], next_cursor=page.next_cursor)


@router.get("/{run_id}", response_model=RunPublic, summary="A run's status, state, verdict and summary")
async def get_run(run: ViewRun, runs: RunServiceDep, settings: SettingsDep) -> RunPublic:
    run = await runs.refresh(run, force=True)
    return public(run, settings, await runs.progress(run))


@router.post(
    "/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Request cancellation of a running run",
    responses={404: {"description": "No such run"}, 409: {"description": "The run has finished"}},
)
async def cancel_run(run: RunnerRun, runs: RunServiceDep) -> Accepted:
    await runs.cancel(run)
    return Accepted(run_id=run.run_id, detail="cancellation requested")


_SIGNAL_NAME = r"^[a-z][a-z0-9_]*$"


@router.post(
    "/{run_id}/signals/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Send a signal (abort, approve, resolve, …) to a running run",
    responses={
        404: {"description": "No such run, or its kind has no such signal"},
        409: {"description": "The run has finished"},
        422: {"description": "The body does not fit the signal"},
    },
)
async def signal_run(
    run: RunnerRun,
    name: Annotated[
        str,
        Path(description="The signal's name, lower_snake_case.", max_length=64, pattern=_SIGNAL_NAME),
    ],
    runs: RunServiceDep,
    body: Annotated[dict[str, Any] | None, Body(description="The signal's argument.")] = None,
) -> Accepted:
    await runs.signal(run, name, body)
    return Accepted(run_id=run.run_id, detail=f"signal {name!r} sent")
