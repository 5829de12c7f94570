"""QA package runs: start one, and read its report."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import HTMLResponse, JSONResponse

from crucible.api.access import NewInTeam
from crucible.api.deps import QaStoreDep, SecretsDep, SettingsDep, TargetPoliciesDep
from crucible.api.kinds import register_kind
from crucible.api.qa_models import QaRunAccepted, QaRunCreate, QaRunLinks, unreadable_spec
from crucible.api.routes.runs import API_PREFIX
from crucible.api.service import RunService
from crucible.api.starts import StarterDep
from crucible.core.auth import Membership
from crucible.core.config import Settings
from crucible.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RunNotFoundError,
)
from crucible.core.qa.evaluate import evaluate
from crucible.core.qa.models import QaFilters, QaPackageRunInput
from crucible.core.qa.report import report_html, report_json, report_junit
from crucible.core.qa.store import QaStore
from crucible.core.runs import new_run_id
from crucible.core.secrets import SecretStore
from crucible.core.tables import Run
from crucible.core.targets import TargetRefused
from crucible.core.targets.orgs import OrgTargetPolicies
from crucible.core.targets.policy import TargetPolicy
from crucible.core.temporal import workflow_ui_url
from crucible.workflows.qa_package import KIND, QaPackageRunWorkflow

log = logging.getLogger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["qa"])
register_kind(KIND, progress=QaPackageRunWorkflow.progress)


async def store_qa_request(
    body: QaRunCreate,
    *,
    key: str,
    team: Membership,
    store: QaStore,
    secrets: SecretStore,
    settings: Settings,
    policies: OrgTargetPolicies,
) -> QaPackageRunInput:
    """Check what ``body`` asks for, seal its headers, store the request under ``key``; the run's input.

    ``key`` is the run's id, or the id of a schedule's stored request that its runs copy.
    A run replays only a run of its own ``team``, and calls only what its organisation's
    target policy allows.
    """
    spec = body.spec if isinstance(body.spec, dict) else None
    if spec is not None and (why := await asyncio.to_thread(unreadable_spec, spec)) is not None:
        raise InvalidRequestError.one(("body", "spec"), why)
    if body.generator == "llm" and not settings.llm_base_url:  # the server's state, not the request's shape
        raise ConflictError("no LLM endpoint is configured on this server (CRUCIBLE_LLM_BASE_URL)")
    if body.replay_of is not None:
        source = await store.get(body.replay_of, team_id=team.team_id)
        if source is None:
            raise NotFoundError("QA run", body.replay_of)
        if source.spec is None:
            raise ConflictError(f"QA run {body.replay_of!r} has no spec to replay")
        if spec is None and body.spec_url is None:
            spec = source.spec
    await _check_targets(body, await policies.policy_for(team.org_id))
    headers_secret = None
    if body.headers:
        headers_secret = await secrets.put(body.headers, prefix="headers")
    recorded = body.model_dump(exclude={"spec", "headers"})
    recorded["header_names"] = sorted(body.headers)
    recorded["headers_secret"] = headers_secret  # a reference, so the secret goes when its runs do
    await store.create(key, request=recorded, spec=spec)
    return QaPackageRunInput(
        base_url=body.base_url,
        spec_url=body.spec_url,
        generator=body.generator,
        concurrency=body.concurrency,
        filters=QaFilters(
            include_tags=body.include.tags,
            exclude_tags=body.exclude.tags,
            include_paths=body.include.paths,
            exclude_paths=body.exclude.paths,
            include_methods=body.include.methods,
            exclude_methods=body.exclude.methods,
        ),
        headers_secret=headers_secret,
        header_names=sorted(body.headers),
        min_pass_rate=body.min_pass_rate,
        request_timeout_s=body.request_timeout_s,
        max_response_time_ms=body.max_response_time_ms,
        seed=body.seed,
        known_failures=body.known_failures,
        replay_of=body.replay_of,
        follow_redirects=body.follow_redirects,
        ai_attempts=settings.llm_attempts,
        ai_token_budget=settings.llm_token_budget,
    )


async def _check_targets(body: QaRunCreate, policy: TargetPolicy) -> None:
    """A base_url or spec_url the organisation's target policy refuses is a 403 now, not a
    failed run (the URL is well formed; the caller may not call it). A name that does not
    resolve here is left to the workers, which may see other names (a cluster's services)."""
    errors = []
    for field, url in (("base_url", body.base_url), ("spec_url", body.spec_url)):
        if url is None:
            continue
        try:
            await policy.check_url(url)
        except TargetRefused as exc:
            if exc.rule != "resolution":
                errors.append(f"{field}: {exc.summary}")
    if errors:
        raise ForbiddenError("; ".join(errors))


@router.post(
    "/qa-runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=QaRunAccepted,
    summary="Start a QA package run against a live service",
    responses={
        403: {"description": "The organisation's target policy refuses base_url or spec_url"},
        404: {"description": "replay_of names no QA run of the team"},
        409: {"description": "replay_of's run has no spec, or no LLM endpoint is configured"},
        422: {"description": "The request or its inline spec is invalid; every error is listed"},
    },
)
async def create_qa_run(
    body: QaRunCreate,
    team: NewInTeam,
    store: QaStoreDep,
    secrets: SecretsDep,
    starter: StarterDep,
    settings: SettingsDep,
    policies: TargetPoliciesDep,
) -> QaRunAccepted:
    run_id = new_run_id(KIND)
    arg = await store_qa_request(
        body, key=run_id, team=team, store=store, secrets=secrets, settings=settings, policies=policies
    )
    await starter.start(
        QaPackageRunWorkflow.run, arg, kind=KIND, owner=team, run_id=run_id, undo=lambda: store.delete(run_id)
    )
    log.info(
        "started QA run %s against %s (headers: %s)", run_id, body.base_url, sorted(body.headers) or "none"
    )
    base = f"{API_PREFIX}/runs/{run_id}"
    return QaRunAccepted(
        run_id=run_id,
        links=QaRunLinks(
            status=base,
            events=f"{base}/events",
            stream=f"{base}/events/stream",
            report=f"{base}/report",
            temporal_ui=workflow_ui_url(settings, run_id),
        ),
    )


async def qa_report(run: Run, store: QaStore, runs: RunService, settings: Settings, format: str) -> Response:
    """A QA run's report (``GET /runs/{id}/report`` answers with it for QA runs)."""
    run_id = run.run_id
    run = await runs.refresh(run, force=True)
    row = await store.get(run_id)
    if row is None:
        raise RunNotFoundError(run_id)
    evaluation = row.evaluation
    if evaluation is None:  # still running, cancelled or failed: what has been found so far
        evaluation = evaluate(
            row.operations or [],
            await store.operation_results(run_id),
            min_pass_rate=float(row.request.get("min_pass_rate", 1.0)),
            known_failures=row.request.get("known_failures") or [],
        )
        evaluation["verdict"] = None
        evaluation["partial"] = True
    meta: dict[str, Any] = {
        "run_id": run_id,
        "status": run.status,
        "state": run.state,
        "title": (row.spec or {}).get("info", {}).get("title") if isinstance(row.spec, dict) else None,
        "spec_version": row.spec_version,
        "base_url": row.request.get("base_url"),
        "spec_url": row.request.get("spec_url"),
        "header_names": row.request.get("header_names") or [],
        "generator": row.request.get("generator"),
        "created_at": row.created_at.isoformat(),
        "temporal_ui_url": workflow_ui_url(settings, run_id),
    }
    if format == "junit":
        return Response(report_junit(meta, evaluation), media_type="application/xml")
    if format == "html":
        return HTMLResponse(report_html(meta, evaluation))
    return JSONResponse(report_json(meta, evaluation))
