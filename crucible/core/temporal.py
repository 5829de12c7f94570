"""Connecting to Temporal, and the search attributes every run carries."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from crucible.core.codec import data_converter
from crucible.core.config import Settings
from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM, new_run_id

log = logging.getLogger(__name__)

ORG_KEY = SearchAttributeKey.for_keyword("CrucibleOrg")
TEAM_KEY = SearchAttributeKey.for_keyword("CrucibleTeam")
KIND_KEY = SearchAttributeKey.for_keyword("CrucibleKind")
SEARCH_ATTRIBUTES = (ORG_KEY, TEAM_KEY, KIND_KEY)
_UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def unreachable_reason(exc: BaseException) -> str | None:
    """Why Temporal did not answer, when ``exc`` says it did not; None for any other error.

    A call can time out or find the frontend unavailable; a lazily connected client that
    cannot reach the server raises a plain ``RuntimeError`` ("Failed client connect").
    """
    if isinstance(exc, RPCError):
        return exc.message if exc.status in _UNREACHABLE else None
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return str(exc)
    return None


def run_search_attributes(*, kind: str, org_id: str, team_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(KIND_KEY, kind),
            SearchAttributePair(ORG_KEY, org_id),
            SearchAttributePair(TEAM_KEY, team_id),
        ]
    )


async def start_run(
    client: Client,
    workflow_run: Any,
    arg: Any,
    *,
    kind: str,
    task_queue: str,
    org_id: str = DEFAULT_ORG,
    team_id: str = DEFAULT_TEAM,
    run_id: str | None = None,
    id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
) -> WorkflowHandle[Any, Any]:
    """Start a run: its id from :func:`new_run_id`, its org, team and kind as search attributes.

    Args:
        workflow_run: the workflow's run method, e.g. ``QaPackageRunWorkflow.run``.
        run_id: an id made earlier with :func:`new_run_id`, when rows must exist before the run.
        id_reuse_policy: ``REJECT_DUPLICATE`` for ids derived from another run's, which may
            start once only.
    """
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        workflow_run,
        arg,
        id=run_id or new_run_id(kind),
        task_queue=task_queue,
        search_attributes=run_search_attributes(kind=kind, org_id=org_id, team_id=team_id),
        id_reuse_policy=id_reuse_policy,
    )
    return handle


def workflow_ui_url(settings: Settings, run_id: str) -> str:
    """A link that opens the run in the Temporal Web UI."""
    namespace = quote(settings.temporal_namespace, safe="")
    return f"{settings.effective_temporal_ui_url}/namespaces/{namespace}/workflows/{quote(run_id, safe='')}"


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    runtime: Runtime | None = None,
    wait_s: float = 0,
) -> Client:
    """Connect to Temporal, retrying for up to ``wait_s`` seconds while it starts."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            return await Client.connect(
                settings.effective_temporal_address,
                namespace=settings.temporal_namespace,
                lazy=lazy,
                runtime=runtime,
                data_converter=data_converter(settings),
            )
        except RuntimeError as exc:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            log.info("waiting for Temporal at %s: %s", settings.effective_temporal_address, exc)
            await asyncio.sleep(1)


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register Crucible's search attributes in ``namespace`` unless they exist."""
    missing = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTES}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
        missing = {name: kind for name, kind in missing.items() if name not in known}
        if not missing:
            return
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        log.info("registered search attributes %s", ", ".join(sorted(missing)))
    except RPCError as exc:
        commands = "; ".join(
            f"temporal operator search-attribute create --namespace {namespace} --name {name} --type Keyword"
            for name in sorted(missing)
        )
        log.warning(
            "could not register search attributes (%s); ask the cluster's operator to run: %s",
            exc.message,
            commands,
        )
