"""``GET /runs/{id}/report``: the report of a run, by its kind (QA runs and chaos experiments)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from crucible.api.access import ViewRun
from crucible.api.deps import ChaosStoreDep, QaStoreDep, RunServiceDep, SettingsDep
from crucible.api.routes.chaos import chaos_report
from crucible.api.routes.qa import qa_report
from crucible.api.routes.runs import API_PREFIX
from crucible.core.errors import NotFoundError

router = APIRouter(prefix=API_PREFIX, tags=["runs"])


@router.get(
    "/runs/{run_id}/report",
    summary="A QA run's or chaos experiment's report: JSON, JUnit XML or a self-contained HTML page",
    response_model=None,
    responses={200: {"content": {"application/json": {}, "application/xml": {}, "text/html": {}}}},
)
async def run_report(
    run: ViewRun,
    qa: QaStoreDep,
    chaos: ChaosStoreDep,
    runs: RunServiceDep,
    settings: SettingsDep,
    format: Annotated[str, Query(pattern="^(json|junit|html)$", description="json, junit or html")] = "json",
) -> Response:
    if run.kind == "qa":
        return await qa_report(run, qa, runs, settings, format)
    if run.kind == "chaos":
        return await chaos_report(run, chaos, runs, settings, format)
    raise NotFoundError(f"report ({run.kind} runs have none) for run", run.run_id)
