"""Dependencies of the routes, built once by the app's lifespan."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from temporalio.client import Client

from crucible.api.service import RunService
from crucible.core.chaos.store import ChaosStore
from crucible.core.config import Settings
from crucible.core.pipelines.store import PipelineStore
from crucible.core.qa.store import QaStore
from crucible.core.secrets import SecretStore
from crucible.core.store import RunStore
from crucible.core.targets.orgs import OrgTargetPolicies


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def get_qa_store(request: Request) -> QaStore:
    store: QaStore = request.app.state.qa_store
    return store


def get_pipeline_store(request: Request) -> PipelineStore:
    store: PipelineStore = request.app.state.pipeline_store
    return store


def get_chaos_store(request: Request) -> ChaosStore:
    store: ChaosStore = request.app.state.chaos_store
    return store


def get_http(request: Request) -> httpx.AsyncClient:
    """The API's own pooled client, for outside checks (Prometheus validating PromQL)."""
    http: httpx.AsyncClient = request.app.state.http
    return http


class RequestSecrets(SecretStore):
    """The secret store as one request uses it: it remembers what the request sealed, so a run
    that does not start (refused by a quota, say) takes its secrets with it."""

    def __init__(self, store: SecretStore) -> None:
        super().__init__(store.engine, store.box)
        self.sealed: list[str] = []

    async def put(self, value: Any, *, prefix: str = "secret") -> str:
        secret_id = await super().put(value, prefix=prefix)
        self.sealed.append(secret_id)
        return secret_id

    async def forget_sealed(self) -> None:
        """Delete what this request sealed."""
        await self.delete(self.sealed)
        self.sealed.clear()


def get_secrets(request: Request) -> RequestSecrets:
    return RequestSecrets(request.app.state.secrets)


def get_target_policies(request: Request) -> OrgTargetPolicies:
    """Organisations' target policies, read fresh each time (a change applies at once)."""
    policies: OrgTargetPolicies = request.app.state.target_policies
    return policies


def get_temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def get_run_service(request: Request) -> RunService:
    state = request.app.state
    return RunService(state.store, state.reconciler, state.refresh_limiter)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RunStore, Depends(get_store)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
QaStoreDep = Annotated[QaStore, Depends(get_qa_store)]
SecretsDep = Annotated[RequestSecrets, Depends(get_secrets)]
PipelineStoreDep = Annotated[PipelineStore, Depends(get_pipeline_store)]
RunServiceDep = Annotated[RunService, Depends(get_run_service)]
ChaosStoreDep = Annotated[ChaosStore, Depends(get_chaos_store)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
TargetPoliciesDep = Annotated[OrgTargetPolicies, Depends(get_target_policies)]
