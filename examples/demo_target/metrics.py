"""The demo target's Prometheus metrics, served at ``/metrics``: requests by route template and
status, and how long they took. Chaos experiments' SLOs can query them beside the probes'."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Fine around the latencies a chaos experiment's SLOs name (100 to 500 ms).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10)


class TargetMetrics:
    """A registry of its own per app, so several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "demo_target_requests",
            "HTTP requests the demo target answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "demo_target_request_duration_seconds",
            "Time to the start of the demo target's response",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _template(scope: Scope) -> str:
    """The path template of the route that takes the request (never the raw path: ids are unbounded)."""
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return str(route.path)
    return "unmatched"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: TargetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                route, method = _template(scope), scope["method"]
                self.metrics.duration.labels(method, route).observe(time.perf_counter() - started)
                self.metrics.requests.labels(method, route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, timed)
