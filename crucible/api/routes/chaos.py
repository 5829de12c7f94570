"""Chaos experiments: create or import one, review it, abort it, read it.

An experiment is a run (kind ``chaos``): its status, events, stream and cancel are under
``/runs/{id}``; its report is ``/runs/{id}/report``. The review endpoints check where the
experiment stands before they send its signal, so a wrong step is a 409 (or a 403 for
approving one's own experiment) rather than a signal the workflow ignores.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import HTMLResponse, JSONResponse

from crucible.api.access import NewInTeam, RunAccess
from crucible.api.auth_deps import PrincipalDep
from crucible.api.chaos_models import (
    ExperimentAccepted,
    ExperimentCreate,
    ExperimentImport,
    ExperimentLinks,
    ReviewAccepted,
    ReviewBody,
)
from crucible.api.chaos_spec import check_spec, experiment_spec
from crucible.api.deps import ChaosStoreDep, HttpDep, RunServiceDep, SettingsDep
from crucible.api.kinds import register_kind
from crucible.api.routes.runs import API_PREFIX
from crucible.api.service import RunService
from crucible.api.starts import RunStarter, StarterDep
from crucible.core.auth import Membership, Role
from crucible.core.chaos.chaostoolkit import from_chaostoolkit
from crucible.core.chaos.model import ExperimentInput, ExperimentSpec, ReviewSignal, SloResult
from crucible.core.chaos.report import report_html, report_json, report_junit
from crucible.core.chaos.store import ChaosStore
from crucible.core.config import Settings
from crucible.core.errors import ConflictError, FieldError, ForbiddenError, InvalidRequestError, NotFoundError
from crucible.core.runs import new_run_id
from crucible.core.tables import Run
from crucible.core.temporal import workflow_ui_url
from crucible.workflows.chaos_experiment import KIND, ChaosExperimentWorkflow

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/chaos-experiments", tags=["chaos experiments"])
# The review steps have routes of their own (below), which record who takes each step and
# check their role, so ``/runs/{id}/signals/…`` sends none of them.
register_kind(KIND, progress=ChaosExperimentWorkflow.progress)

#: The workflow's signal for each review step.
REVIEW_SIGNALS = {
    "submit": ChaosExperimentWorkflow.submit,
    "approve": ChaosExperimentWorkflow.approve,
    "request_changes": ChaosExperimentWorkflow.request_changes,
    "abort": ChaosExperimentWorkflow.abort,
}
#: Where each review step applies.
REVIEW_STATES = {
    "submit": ("Draft", "ChangesRequested"),
    "approve": ("UnderReview",),
    "request_changes": ("UnderReview",),
}
#: The role each step needs in the experiment's team: reviewing it is an admin's.
REVIEW_ROLES = {
    "submit": Role.runner,
    "approve": Role.admin,
    "request_changes": Role.admin,
    "abort": Role.runner,
}
#: States after which an abort has nothing left to stop.
FINISHING = ("Recovery", "Validated", "Escalated", "AnalyzingResults")


async def _start(
    spec: ExperimentSpec, team: Membership, settings: Settings, starter: RunStarter, store: ChaosStore
) -> ExperimentAccepted:
    run_id = new_run_id(KIND)
    await store.save_experiment(run_id, spec)
    arg = ExperimentInput(
        spec, auto_approve=settings.chaos_auto_approve, heartbeat_timeout_s=settings.saga_heartbeat_timeout_s
    )
    await starter.start(
        ChaosExperimentWorkflow.run,
        arg,
        kind=KIND,
        owner=team,
        run_id=run_id,
        undo=lambda: store.forget_experiment(run_id),
    )
    log.info("created chaos experiment %s (%s, %s fault)", run_id, spec.name, spec.fault.provider)
    base = f"{API_PREFIX}/runs/{run_id}"
    own = f"{API_PREFIX}/chaos-experiments/{run_id}"
    return ExperimentAccepted(
        run_id=run_id,
        state="Approved" if settings.chaos_auto_approve else "Draft",
        links=ExperimentLinks(
            status=base,
            events=f"{base}/events",
            stream=f"{base}/events/stream",
            report=f"{base}/report",
            submit=f"{own}/submit",
            approve=f"{own}/approve",
            request_changes=f"{own}/request-changes",
            abort=f"{own}/abort",
            cancel=f"{base}/cancel",
            temporal_ui=workflow_ui_url(settings, run_id),
        ),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExperimentAccepted,
    summary="Create a chaos experiment; it starts in Draft (or Approved, with auto-approval)",
    responses={422: {"description": "The experiment is invalid; every error listed"}},
)
async def create_experiment(
    body: ExperimentCreate,
    team: NewInTeam,
    settings: SettingsDep,
    starter: StarterDep,
    store: ChaosStoreDep,
    http: HttpDep,
) -> ExperimentAccepted:
    spec = await experiment_spec(body, settings, http)
    return await _start(spec, team, settings, starter, store)


def _document(body: ExperimentImport) -> Any:
    if isinstance(body.experiment, dict):
        return body.experiment
    try:
        return yaml.safe_load(body.experiment)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise InvalidRequestError.one(("body", "experiment"), f"neither JSON nor YAML: {exc}") from None


def _overrides(body: ExperimentImport) -> dict[str, Any]:
    if unknown := body.overrides.unknown():
        errors = [FieldError(("body", "overrides", k), "cannot be overridden") for k in unknown]
        raise InvalidRequestError(errors)
    return body.overrides.given()


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExperimentAccepted,
    summary="Import a Chaos Toolkit experiment and create it",
    responses={422: {"description": "Parts of the file Crucible cannot run, each named"}},
)
async def import_experiment(
    body: ExperimentImport,
    team: NewInTeam,
    settings: SettingsDep,
    starter: StarterDep,
    store: ChaosStoreDep,
    http: HttpDep,
) -> ExperimentAccepted:
    spec = from_chaostoolkit(_document(body), overrides=_overrides(body))
    await check_spec(spec, settings, http)
    return await _start(spec, team, settings, starter, store)


async def _review(run: Run, name: str, review: ReviewSignal, runs: RunService) -> ReviewAccepted:
    run_id = run.run_id
    progress = await runs.progress(await runs.refresh(run)) or {}
    state = progress.get("state")
    if name in REVIEW_STATES and state not in REVIEW_STATES[name]:
        raise ConflictError(f"{name} applies in {' or '.join(REVIEW_STATES[name])}; {run_id} is in {state}")
    if name == "approve" and review.by == progress.get("submitted_by"):
        raise ForbiddenError(f"{review.by} submitted {run_id} and may not approve it; ask someone else")
    if name == "abort" and state in FINISHING:
        raise ConflictError(f"{run_id} is in {state}: its fault is rolled back already")
    await runs.send(run, REVIEW_SIGNALS[name], review)
    return ReviewAccepted(run_id=run_id, signal=name, state=state, by=review.by)


def _review_route(name: str, path: str, summary: str) -> None:
    async def review(
        runs: RunServiceDep,
        principal: PrincipalDep,
        body: ReviewBody | None = None,
        # A default, not an annotation: annotations here are strings, resolved outside this scope.
        run: Run = Depends(RunAccess(REVIEW_ROLES[name], kind=KIND)),
    ) -> ReviewAccepted:
        review = ReviewSignal(by=principal.email, comment=body.comment if body else "")
        return await _review(run, name, review, runs)

    router.post(
        f"/{{run_id}}/{path}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ReviewAccepted,
        summary=summary,
        name=f"chaos_{name}",
        responses={
            403: {"description": "The approver submitted it, or is not an admin of its team"},
            409: {"description": "Wrong state"},
        },
    )(review)


_review_route("submit", "submit", "Submit a Draft experiment for review")
_review_route("approve", "approve", "Approve an experiment under review (not the submitter)")
_review_route("request_changes", "request-changes", "Send an experiment under review back for changes")
_review_route("abort", "abort", "Abort: roll the fault back now and measure the recovery")


def _in_spec_order(results: list[SloResult], spec: dict[str, Any]) -> list[SloResult]:
    """Results in the order the experiment lists its SLOs."""
    order = {slo["name"]: i for i, slo in enumerate(spec.get("slos") or [])}
    return sorted(results, key=lambda r: order.get(r.slo, len(order)))


@router.get("/{run_id}", summary="An experiment's definition, state, results and SLO measurements")
async def get_experiment(
    experiment: Annotated[Run, Depends(RunAccess(Role.viewer, kind=KIND))],
    runs: RunServiceDep,
    store: ChaosStoreDep,
) -> dict[str, Any]:
    run_id = experiment.run_id
    spec = await store.experiment(run_id)
    if spec is None:
        raise NotFoundError("chaos experiment", run_id)
    run = await runs.refresh(experiment)
    measurements = await store.measurements(run_id)
    return {
        "run_id": run_id,
        "status": run.status,
        "state": run.state,
        "verdict": run.verdict,
        "summary": run.summary,
        "progress": await runs.progress(run),
        "experiment": spec,
        "results": [r.__dict__ for r in _in_spec_order(await store.results(run_id), spec)],
        "measurements": [{**m.__dict__, "at": m.at.isoformat()} for m in measurements],
    }


async def chaos_report(
    run: Run, store: ChaosStore, runs: RunService, settings: Settings, format: str
) -> Response:
    """A chaos experiment's report (``GET /runs/{id}/report`` answers with it for chaos runs)."""
    run_id = run.run_id
    spec = await store.experiment(run_id)
    if spec is None:
        raise NotFoundError("chaos experiment", run_id)
    run = await runs.refresh(run, force=True)
    results = _in_spec_order(await store.results(run_id), spec)
    measurements = await store.measurements(run_id)
    meta: dict[str, Any] = {
        "run_id": run_id,
        "name": spec.get("name"),
        "target": spec.get("target"),
        "status": run.status,
        "state": run.state,
        "verdict": run.verdict,
        "summary": run.summary,
        "created_at": run.created_at.isoformat(),
        "temporal_ui_url": workflow_ui_url(settings, run_id),
    }
    if format == "junit":
        return Response(report_junit(meta, results), media_type="application/xml")
    if format == "html":
        thresholds = {
            slo["name"]: slo["threshold"] if slo.get("kind") == "prometheus" else None for slo in spec["slos"]
        }
        return HTMLResponse(report_html(meta, thresholds, results, measurements))
    return JSONResponse(report_json({**meta, "experiment": spec}, results, measurements))
