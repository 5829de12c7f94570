"""Sagas: define and start one. Runs are read, cancelled and signalled through ``/runs``."""

from __future__ import annotations

import logging

from fastapi import APIRouter, status

from crucible.api.access import NewInTeam
from crucible.api.deps import SecretsDep, SettingsDep
from crucible.api.kinds import register_kind
from crucible.api.routes.runs import API_PREFIX
from crucible.api.saga_models import (
    CallModel,
    ExpectModel,
    HttpRequestModel,
    SagaAccepted,
    SagaCreate,
    SagaLinks,
    StepModel,
)
from crucible.api.starts import StarterDep
from crucible.core.config import Settings
from crucible.core.runs import new_run_id
from crucible.core.sagas.models import (
    Expectation,
    HttpCall,
    KafkaCall,
    SagaCall,
    SagaInput,
    SagaRetry,
    SagaStep,
)
from crucible.core.secrets import SecretStore
from crucible.core.temporal import workflow_ui_url
from crucible.workflows.saga import KIND, SagaWorkflow

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/sagas", tags=["sagas"])
register_kind(
    KIND, {"abort": SagaWorkflow.abort, "resolve": SagaWorkflow.resolve}, progress=SagaWorkflow.progress
)


def _http(model: HttpRequestModel) -> HttpCall:
    return HttpCall(model.method, model.url, model.body, header_names=sorted(model.headers))


def _call(
    model: CallModel, *, capture: dict[str, str] | None = None, expect: ExpectModel | None = None
) -> SagaCall:
    kafka = model.kafka
    return SagaCall(
        http=_http(model.http) if model.http is not None else None,
        kafka=KafkaCall(kafka.topic, kafka.value, kafka.key) if kafka is not None else None,
        capture=capture or {},
        expect=Expectation(expect.status, expect.json_) if expect is not None else None,
    )


async def _step(model: StepModel, secrets: SecretStore) -> SagaStep:
    """The workflow's view of a step: its calls, and its header values sealed in one secret."""
    calls = {"action": model.action, "compensation": model.compensation, "verify": model.verify}
    headers = {
        phase: call.http.headers
        for phase, call in calls.items()
        if call is not None and call.http and call.http.headers
    }
    secret = await secrets.put(headers, prefix="headers") if headers else None
    return SagaStep(
        name=model.name,
        action=_call(model.action, capture=model.action.capture),
        compensation=_call(model.compensation) if model.compensation is not None else None,
        verify=_call(model.verify, expect=model.verify.expect) if model.verify is not None else None,
        retry=SagaRetry(**model.retry.model_dump()),
        timeout_s=model.timeout_s,
        headers_secret=secret,
        compensate_if_uncertain=model.compensate_if_uncertain,
    )


async def saga_input(body: SagaCreate, secrets: SecretStore, settings: Settings) -> SagaInput:
    """The workflow's input for ``body``, which has been checked."""
    return SagaInput(
        name=body.name,
        steps=[await _step(step, secrets) for step in body.steps],
        heartbeat_timeout_s=settings.saga_heartbeat_timeout_s,
    )


def accepted(run_id: str, settings: Settings) -> SagaAccepted:
    base = f"{API_PREFIX}/runs/{run_id}"
    return SagaAccepted(
        run_id=run_id,
        links=SagaLinks(
            status=base,
            events=f"{base}/events",
            stream=f"{base}/events/stream",
            cancel=f"{base}/cancel",
            abort=f"{base}/signals/abort",
            resolve=f"{base}/signals/resolve",
            temporal_ui=workflow_ui_url(settings, run_id),
        ),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SagaAccepted,
    summary="Define and start a saga: steps with actions, compensations and verify requests",
    responses={422: {"description": "The saga is invalid; every error listed"}},
)
async def create_saga(
    body: SagaCreate, team: NewInTeam, secrets: SecretsDep, starter: StarterDep, settings: SettingsDep
) -> SagaAccepted:
    body.check()
    run_id = new_run_id(KIND)
    arg = await saga_input(body, secrets, settings)
    await starter.start(SagaWorkflow.run, arg, kind=KIND, owner=team, run_id=run_id)
    log.info("started saga %s (%s) with %d steps", run_id, body.name, len(body.steps))
    return accepted(run_id, settings)
