"""An async client for Prometheus' HTTP API: instant and range queries, and a PromQL check.

Exceptions::

    PrometheusError                  (CrucibleError)
    ├── PrometheusQueryError         Prometheus refused the query: bad PromQL (400) or it could
    │                                not evaluate it (422), or the result is not a vector or scalar
    └── PrometheusUnavailableError   no usable answer: connection refused, timeout, 5xx, not JSON
                                     (also a DependencyUnavailableError, so the API answers 503)

Values are floats, so ``NaN`` and ``±Inf`` (what ``0/0`` and ``1/0`` give) come through as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx

from crucible.core.errors import CrucibleError, DependencyUnavailableError

#: A query that takes longer than this is cut off by Prometheus itself.
DEFAULT_QUERY_TIMEOUT_S = 10.0
#: The client waits a little longer than Prometheus, so Prometheus' own timeout error arrives.
CLIENT_GRACE_S = 2.0


class PrometheusError(CrucibleError):
    """Root of the errors of :class:`PrometheusClient`."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the query; ``message`` is Prometheus' own words (``1:7: parse error: …``)."""

    def __init__(self, query: str, message: str, *, error_type: str = "bad_data") -> None:
        super().__init__(f"PromQL {query!r} refused: {message}")
        self.query = query
        self.message = message
        self.error_type = error_type


class PrometheusUnavailableError(PrometheusError, DependencyUnavailableError):
    """Prometheus did not answer usefully; the same call may work later."""

    def __init__(self, reason: str) -> None:
        DependencyUnavailableError.__init__(self, "Prometheus", reason)


@dataclass(frozen=True)
class PromSample:
    """One series' value at one moment. A scalar result has no labels."""

    labels: dict[str, str]
    value: float
    #: Epoch seconds of the evaluation.
    at: float = 0.0


@dataclass(frozen=True)
class PromSeries:
    """One series of a range query: ``(epoch seconds, value)`` pairs in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


def _float(text: Any) -> float:
    # Prometheus sends values as strings: "0.25", "NaN", "+Inf", "-Inf"; float() takes them all.
    return float(text)


class PrometheusClient:
    """Queries one Prometheus through a pooled ``httpx.AsyncClient`` that the caller owns."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, *, timeout_s: float = DEFAULT_QUERY_TIMEOUT_S
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def instant(self, query: str, *, at: float | None = None) -> list[PromSample]:
        """The query's value now (or at ``at``, epoch seconds); no data gives an empty list.

        Raises:
            PrometheusQueryError: bad PromQL, or a query whose result is a range vector or string.
            PrometheusUnavailableError: Prometheus did not answer usefully.
        """
        params = {"query": query}
        if at is not None:
            params["time"] = _timestamp(at)
        data = await self._get("/api/v1/query", params, query)
        kind, result = data.get("resultType"), data.get("result") or []
        if kind == "vector":
            return [
                PromSample(dict(item.get("metric", {})), _float(item["value"][1]), float(item["value"][0]))
                for item in result
            ]
        if kind == "scalar":
            return [PromSample({}, _float(result[1]), float(result[0]))]
        raise PrometheusQueryError(
            query, f"the result is a {kind}; a query here must give an instant vector or a scalar"
        )

    async def range(self, query: str, start: float, end: float, step: float) -> list[PromSeries]:
        """The query evaluated every ``step`` seconds from ``start`` to ``end`` (epoch seconds).

        Raises:
            PrometheusQueryError: bad PromQL, or more than 11,000 points per series.
            PrometheusUnavailableError: Prometheus did not answer usefully.
        """
        params = {
            "query": query,
            "start": _timestamp(start),
            "end": _timestamp(end),
            "step": f"{step:g}",
        }
        data = await self._get("/api/v1/query_range", params, query)
        if data.get("resultType") != "matrix":
            raise PrometheusQueryError(query, f"a range query gave a {data.get('resultType')}")
        return [
            PromSeries(
                dict(item.get("metric", {})), [(float(at), _float(value)) for at, value in item["values"]]
            )
            for item in data["result"]
        ]

    async def validate(self, query: str) -> None:
        """Check a query before it is relied on: its syntax, its types, and that it gives a
        vector or a scalar. It is evaluated at epoch 0, where there is no data, so it costs nothing.

        Raises:
            PrometheusQueryError: naming the problem in Prometheus' words.
            PrometheusUnavailableError: Prometheus did not answer usefully.
        """
        await self.instant(query, at=0.0)

    async def ready(self) -> bool:
        """Whether Prometheus answers ``/-/ready`` with 200 (it has loaded its data)."""
        try:
            response = await self.http.get(f"{self.base_url}/-/ready", timeout=self.timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _get(self, path: str, params: dict[str, str], query: str) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        params = {**params, "timeout": f"{self.timeout_s:g}s"}
        try:
            response = await self.http.get(url, params=params, timeout=self.timeout_s + CLIENT_GRACE_S)
        except httpx.TimeoutException:
            raise PrometheusUnavailableError(f"no answer from {self.base_url} in time") from None
        except httpx.HTTPError as exc:
            raise PrometheusUnavailableError(f"{type(exc).__name__} at {self.base_url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PrometheusUnavailableError(
                f"{self.base_url} answered {response.status_code} without Prometheus' JSON"
            )
        if response.status_code in (400, 422):
            raise PrometheusQueryError(
                query,
                str(body.get("error", "refused")).removeprefix('invalid parameter "query": '),
                error_type=str(body.get("errorType", "bad_data")),
            )
        if body.get("status") != "success":
            raise PrometheusUnavailableError(
                f"{self.base_url} answered {response.status_code}: {body.get('error', 'no reason given')}"
            )
        data: dict[str, Any] = body.get("data") or {}
        return data


def _timestamp(at: float) -> str:
    if not math.isfinite(at):
        raise ValueError(f"a query time must be finite, not {at}")
    return f"{at:.3f}"
