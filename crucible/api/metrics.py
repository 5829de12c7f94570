"""Prometheus metrics of the API: request counts and latencies by route template."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "crucible_api_requests",
            "HTTP requests answered by the API",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "crucible_api_request_duration_seconds",
            "Time to the first byte of the API's response",
            ["method", "route"],
            registry=registry,
        )


class MetricsMiddleware:
    """Counts every request under its route template (never the raw path: ids are unbounded)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - started)
                self.metrics.requests.labels(scope["method"], template, str(status["code"])).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)
