"""Saga tests: start one. Runs are read (assertions in the summary) and cancelled through ``/runs``."""

from __future__ import annotations

import logging

from fastapi import APIRouter, status

from crucible.api.access import NewInTeam
from crucible.api.deps import SecretsDep, SettingsDep
from crucible.api.kinds import register_kind
from crucible.api.routes.runs import API_PREFIX
from crucible.api.saga_test_models import (
    RequestModel,
    RollbackModel,
    SagaTestAccepted,
    SagaTestCreate,
    SagaTestLinks,
)
from crucible.api.starts import StarterDep
from crucible.core.config import Settings
from crucible.core.runs import new_run_id
from crucible.core.saga_tests.models import (
    FAULT,
    ROLLBACK,
    TRIGGER,
    FaultPlan,
    ProcessFault,
    RequestSpec,
    SagaTestInput,
    SagaTestSpec,
)
from crucible.core.secrets import SecretStore
from crucible.core.temporal import workflow_ui_url
from crucible.workflows.saga_test import KIND, SagaTestWorkflow

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/saga-tests", tags=["saga tests"])
register_kind(KIND, progress=SagaTestWorkflow.progress)

#: A process stopped by one of these is continued by the rollback unless it says otherwise.
_STOPPING = {"SIGSTOP", "SIGTSTP"}


def _request(model: RequestModel | RollbackModel | None) -> RequestSpec | None:
    if model is None or model.url is None:
        return None
    return RequestSpec(model.method, model.url, model.body, header_names=sorted(model.headers))


def _fault(body: SagaTestCreate) -> FaultPlan | None:
    fault = body.fault
    if fault is None:
        return None
    process = ProcessFault(fault.process.pid, fault.process.signal) if fault.process else None
    rollback_signal = fault.rollback.signal if fault.rollback else None
    if rollback_signal is None and process is not None and process.signal in _STOPPING:
        rollback_signal = "SIGCONT"  # a stopped process is never left stopped
    return FaultPlan(
        http=_request(fault.http),
        process=process,
        rollback_http=_request(fault.rollback),
        rollback_signal=rollback_signal,
        when=fault.when,
        duration_s=fault.duration_s,
    )


async def _headers_secret(body: SagaTestCreate, secrets: SecretStore) -> str | None:
    """One secret with the header values of the trigger, the fault and its rollback."""
    fault = body.fault
    headers = {
        TRIGGER: body.trigger.headers,
        FAULT: fault.http.headers if fault and fault.http else {},
        ROLLBACK: fault.rollback.headers if fault and fault.rollback else {},
    }
    headers = {role: values for role, values in headers.items() if values}
    return await secrets.put(headers, prefix="headers") if headers else None


async def saga_test_input(body: SagaTestCreate, secrets: SecretStore, settings: Settings) -> SagaTestInput:
    """The workflow's input for ``body``, which has been checked."""
    trigger = _request(body.trigger)
    assert trigger is not None
    spec = SagaTestSpec(
        topics=body.topics,
        trigger=trigger,
        expected_events=body.expected_events,
        correlation_id=body.correlation_id,
        correlation_from=body.correlation_from,
        correlation_path=body.correlation_path,
        type_path=body.type_path,
        time_path=body.time_path,
        failure_event=body.failure_event,
        compensation_events=body.compensation_events,
        recovery_within_s=body.recovery_within_s,
        allow_other_events=body.allow_other_events,
        settle_s=body.settle_s,
        timeout_s=body.timeout_s,
        fault=_fault(body),
        headers_secret=await _headers_secret(body, secrets),
        event_id_path=body.event_id_path,
        allow_repeated_types=body.allow_repeated_types,
    )
    # A consumer on a worker that died is given to another as soon as a saga's call would be.
    return SagaTestInput(spec, heartbeat_timeout_s=settings.saga_heartbeat_timeout_s)


def accepted(run_id: str, body: SagaTestCreate, settings: Settings) -> SagaTestAccepted:
    base = f"{API_PREFIX}/runs/{run_id}"
    return SagaTestAccepted(
        run_id=run_id,
        correlation_id=body.correlation_id,
        links=SagaTestLinks(
            status=base,
            events=f"{base}/events",
            stream=f"{base}/events/stream",
            cancel=f"{base}/cancel",
            temporal_ui=workflow_ui_url(settings, run_id),
        ),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SagaTestAccepted,
    summary="Start a saga test: watch Kafka topics, trigger a flow, inject a fault, assert the events",
    responses={422: {"description": "The test is invalid; every error listed"}},
)
async def create_saga_test(
    body: SagaTestCreate, team: NewInTeam, secrets: SecretsDep, starter: StarterDep, settings: SettingsDep
) -> SagaTestAccepted:
    body.check()
    run_id = new_run_id(KIND)
    arg = await saga_test_input(body, secrets, settings)
    await starter.start(SagaTestWorkflow.run, arg, kind=KIND, owner=team, run_id=run_id)
    log.info("started saga test %s on %s", run_id, ", ".join(body.topics))
    return accepted(run_id, body, settings)
