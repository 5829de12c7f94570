"""The FastAPI application: ``uvicorn crucible.api.app:app`` or ``crucible api``.

Clients (the Temporal client, the database engine) are built by the lifespan, once
per process, so importing this module connects to nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

import crucible
from crucible.api.access import mark_access
from crucible.api.errors import install_error_handlers
from crucible.api.metrics import ApiMetrics, MetricsMiddleware
from crucible.api.routes import (
    auth,
    batch,
    chaos,
    codec,
    events,
    health,
    pipelines,
    qa,
    reports,
    runs,
    saga_tests,
    sagas,
    schedules,
    tokens,
)
from crucible.api.service import RefreshLimiter
from crucible.core.auth import AccountStore, AuthService, key_ring
from crucible.core.chaos.store import ChaosStore
from crucible.core.config import Settings, load_settings
from crucible.core.db import create_engine
from crucible.core.kafka import EventPublisher
from crucible.core.pipelines.store import PipelineStore
from crucible.core.qa.store import QaStore
from crucible.core.quotas import QuotaStore
from crucible.core.reconcile import RunReconciler
from crucible.core.secrets import SecretStore, secret_box
from crucible.core.store import RunStore
from crucible.core.targets.orgs import OrgTargetPolicies
from crucible.core.temporal import connect

DESCRIPTION = """\
Start runs, follow their events, cancel them and send them signals.

Every run's id is its Temporal workflow id, so the same id works here, in the
`crucible` CLI and in the Temporal Web UI.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. ``settings`` default to the environment's, read at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        ring = key_ring(resolved)  # refuses to start without a usable signing secret
        engine = create_engine(resolved.effective_database_url)
        publisher = EventPublisher(
            resolved.effective_kafka_bootstrap_servers,
            topic=resolved.kafka_events_topic,
            idempotence=resolved.kafka_idempotence,
        )
        app.state.settings = resolved
        app.state.store = RunStore(engine)
        app.state.qa_store = QaStore(engine)
        app.state.pipeline_store = PipelineStore(engine)
        app.state.chaos_store = ChaosStore(engine)
        app.state.http = httpx.AsyncClient(timeout=10, follow_redirects=False)
        app.state.secrets = SecretStore(engine, secret_box(resolved))
        app.state.temporal = await connect(resolved, lazy=True)
        app.state.reconciler = RunReconciler(app.state.store, app.state.temporal, publisher)
        app.state.refresh_limiter = RefreshLimiter()
        app.state.target_policies = OrgTargetPolicies(engine, resolved, ttl_s=0)
        app.state.quotas = QuotaStore.configured(engine, resolved)
        app.state.auth = AuthService.from_settings(AccountStore(engine), resolved, ring=ring)
        await app.state.auth.warm_up()
        try:
            yield
        finally:
            await app.state.http.aclose()
            await publisher.stop()
            await engine.dispose()

    app = FastAPI(
        title="Crucible",
        version=crucible.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.metrics = ApiMetrics(CollectorRegistry())
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    for router in (
        health.router,
        runs.router,
        events.router,
        qa.router,
        batch.router,
        pipelines.router,
        schedules.router,
        sagas.router,
        saga_tests.router,
        chaos.router,
        reports.router,
        codec.router,
        auth.router,
        tokens.router,
    ):
        mark_access(router)
        app.include_router(router)
    return app


app = create_app()
