"""Activities that measure a chaos experiment's SLOs, read firing alerts and store results.

``measure_slos`` queries every SLO once, at one sample of one phase, and writes the values
to SLO_MEASUREMENTS before it returns: keyed by (run, phase, sample, SLO), so a retry
rewrites its own rows. A PromQL SLO's value is the worst of the series its query returns;
no series (or NaN) is "no data", a breach unless the SLO says ``no_data: ok``. A Prometheus
that does not answer is retried; on the last attempt it counts as a breach, with the reason,
since an experiment that cannot see its SLOs must not go on breaking things.
"""

from __future__ import annotations

import math
import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.chaos_actions import check_slo_call
from crucible.core.chaos.calls import CommandAllowlist
from crucible.core.chaos.model import (
    NO_DATA_OK,
    PROMETHEUS_SLO,
    AlertsInput,
    FiringAlerts,
    MeasureSlosInput,
    RecordResultsInput,
    Slo,
    SloMeasurement,
    compare,
    with_experiment,
    worst,
)
from crucible.core.chaos.store import ChaosStore
from crucible.core.prometheus import PrometheusClient, PrometheusQueryError, PrometheusUnavailableError

PROMETHEUS_UNAVAILABLE = "PrometheusUnavailable"
PROMETHEUS_MISSING = "PrometheusNotConfigured"
#: ``measure_slos`` attempts before a silent Prometheus counts as a breach; the workflow's retry
#: policy allows exactly this many.
MEASURE_ATTEMPTS = 3


class ChaosActivities:
    def __init__(
        self,
        store: ChaosStore,
        http: httpx.AsyncClient,
        *,
        prometheus_url: str | None,
        allowlist: CommandAllowlist,
        targets: httpx.AsyncClient | None = None,
    ) -> None:
        self.store = store
        #: The operator's Prometheus is queried through ``http``; ``http`` SLOs' URLs, which the
        #: experiment names, through ``targets`` (the guarded client; unset: ``http``).
        self.http = http
        self.targets = targets or http
        self.prometheus = PrometheusClient(http, prometheus_url) if prometheus_url else None
        self.allowlist = allowlist

    def _prometheus(self) -> PrometheusClient:
        if self.prometheus is None:
            raise ApplicationError(
                "no Prometheus is configured for SLO and alert queries; set CRUCIBLE_PROMETHEUS_URL",
                type=PROMETHEUS_MISSING,
                non_retryable=True,
            )
        return self.prometheus

    @activity.defn
    async def measure_slos(self, request: MeasureSlosInput) -> list[SloMeasurement]:
        measured = [await self._measure(request.run_id, slo, request.phase) for slo in request.slos]
        targets = {slo.name: slo.target() for slo in request.slos}
        await self.store.record_measurements(request.run_id, request.sample, targets, measured)
        return measured

    async def _measure(self, run_id: str, slo: Slo, phase: str) -> SloMeasurement:
        at = time.time()
        if slo.kind != PROMETHEUS_SLO:
            return await self._check(slo, phase, at)
        try:
            samples = await self._prometheus().instant(with_experiment(slo.query, run_id))
        except PrometheusQueryError as exc:
            return SloMeasurement(slo.name, phase, at, None, False, f"the query failed: {exc}")
        except PrometheusUnavailableError as exc:
            if activity.info().attempt < MEASURE_ATTEMPTS:
                raise ApplicationError(str(exc), type=PROMETHEUS_UNAVAILABLE) from None
            return SloMeasurement(slo.name, phase, at, None, False, f"Prometheus did not answer: {exc}")
        values = [s.value for s in samples if not math.isnan(s.value)]
        if not values:
            met = slo.no_data == NO_DATA_OK
            return SloMeasurement(slo.name, phase, at, None, met, "no data")
        value = worst(values, slo.op)
        return SloMeasurement(slo.name, phase, at, value, compare(value, slo.op, slo.threshold))

    async def _check(self, slo: Slo, phase: str, at: float) -> SloMeasurement:
        value, met, note = await check_slo_call(slo, http=self.targets, allowlist=self.allowlist)
        return SloMeasurement(slo.name, phase, at, value, met, note)

    @activity.defn
    async def firing_alerts(self, request: AlertsInput) -> FiringAlerts:
        """The alerts ``request.query`` returns: each series' labels."""
        try:
            samples = await self._prometheus().instant(request.query)
        except PrometheusQueryError as exc:
            raise ApplicationError(
                f"the alerts query failed: {exc}", type="AlertsQueryInvalid", non_retryable=True
            ) from None
        except PrometheusUnavailableError as exc:
            raise ApplicationError(str(exc), type=PROMETHEUS_UNAVAILABLE) from None
        return FiringAlerts([dict(s.labels) for s in samples])

    @activity.defn
    async def record_chaos_results(self, request: RecordResultsInput) -> None:
        await self.store.record_results(request.run_id, request.results)
