"""Liveness of the parts the API needs, and the API's own metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from crucible.api.deps import SettingsDep, StoreDep, TemporalDep
from crucible.api.models import ComponentHealth, Health
from crucible.core.kafka import ping_kafka

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 3.0


async def _check(probe: Callable[[], Awaitable[object]]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ComponentHealth(ok=False, latency_ms=_ms(started), error=reason[:300])
    return ComponentHealth(ok=True, latency_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@router.get(
    "/healthz",
    response_model=Health,
    summary="200 when Temporal, PostgreSQL and Kafka all answer; 503 naming what is down",
    responses={503: {"model": Health, "description": "At least one part is down"}},
)
async def healthz(settings: SettingsDep, store: StoreDep, temporal: TemporalDep) -> JSONResponse:
    async def temporal_probe() -> None:
        await temporal.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_S))

    names = ("temporal", "postgres", "kafka")
    results = await asyncio.gather(
        _check(temporal_probe),
        _check(store.ping),
        _check(lambda: ping_kafka(settings.effective_kafka_bootstrap_servers)),
    )
    components = dict(zip(names, results, strict=True))
    down = [name for name, health in components.items() if not health.ok]
    body = Health(detail=f"unavailable: {', '.join(down)}" if down else "ok", components=components)
    return JSONResponse(status_code=503 if down else 200, content=body.model_dump(mode="json"))


@router.get("/metrics", summary="Prometheus metrics of the API", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
