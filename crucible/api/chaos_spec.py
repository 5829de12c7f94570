"""From a checked request to an `ExperimentSpec`: every check that needs the settings.

A provider's parameters, commands against the allowlist, PromQL against Prometheus (its
parser, not ours), and the number of samples each phase may take. Every problem is
reported at once, each at its field (422).
"""

from __future__ import annotations

from typing import Any

import httpx

from crucible.activities.chaos_kubernetes import pod_params_from_dict
from crucible.activities.chaos_process import process_params_from_dict
from crucible.api.chaos_models import MAX_SAMPLES, ExperimentCreate
from crucible.core.chaos.calls import CommandAllowlist, CommandNotAllowedError
from crucible.core.chaos.faults import fault_from_dict, fault_to_dict
from crucible.core.chaos.model import (
    KUBERNETES,
    PROCESS,
    PROMETHEUS_SLO,
    PROXY,
    ChaosAction,
    ExperimentSpec,
    FaultSpec,
    ProcessCall,
    with_experiment,
)
from crucible.core.config import Settings
from crucible.core.errors import DependencyUnavailableError, FieldError, InvalidRequestError
from crucible.core.prometheus import PrometheusClient, PrometheusQueryError, PrometheusUnavailableError

Loc = tuple[str | int, ...]


def _nested(errors: list[FieldError], prefix: Loc, exc: InvalidRequestError) -> None:
    errors.extend(FieldError((*prefix, *e.loc), e.msg, e.type) for e in exc.errors)


def _proxy_params(params: dict[str, Any], settings: Settings, errors: list[FieldError]) -> dict[str, Any]:
    loc: Loc = ("body", "fault", "params")
    checked: dict[str, Any] = {}
    unknown = sorted(set(params) - {"proxy", "fault", "control_url"})
    errors.extend(FieldError((*loc, name), "is not a parameter of a proxy fault") for name in unknown)
    proxy = params.get("proxy")
    if not isinstance(proxy, str) or not proxy:
        errors.append(FieldError((*loc, "proxy"), "name the chaos proxy to put the fault on"))
    checked["proxy"] = proxy
    control = params.get("control_url") or settings.chaos_proxy_url
    if not isinstance(control, str) or not control.startswith(("http://", "https://")):
        errors.append(
            FieldError(
                (*loc, "control_url"),
                "give the chaos proxy's control URL, or set CRUCIBLE_CHAOS_PROXY_URL",
            )
        )
    checked["control_url"] = control
    fault = params.get("fault")
    if not isinstance(fault, dict):
        errors.append(FieldError((*loc, "fault"), 'give the fault, like {"type": "latency", "ms": 200}'))
    else:
        try:
            checked["fault"] = fault_to_dict(fault_from_dict(fault))
        except InvalidRequestError as exc:
            _nested(errors, (*loc, "fault"), exc)
    return checked


def _fault(body: ExperimentCreate, settings: Settings, errors: list[FieldError]) -> FaultSpec:
    fault = body.fault
    params: dict[str, Any] = dict(fault.params)
    try:
        if fault.provider == PROXY:
            params = _proxy_params(params, settings, errors)
        elif fault.provider == PROCESS:
            process_params_from_dict(params)
        elif fault.provider == KUBERNETES:
            pod_params_from_dict(params)
    except InvalidRequestError as exc:
        errors.extend(exc.errors)
    return FaultSpec(
        fault.provider,
        params,
        [a.to_action() for a in fault.method],
        [a.to_action() for a in fault.rollbacks],
    )


def _commands(spec: ExperimentSpec, allowlist: CommandAllowlist, errors: list[FieldError]) -> None:
    def check(call: ProcessCall | None, loc: Loc) -> None:
        if call is None:
            return
        try:
            allowlist.check(call.command)
        except CommandNotAllowedError as exc:
            errors.append(FieldError((*loc, "process", "command", 0), str(exc)))

    for i, slo in enumerate(spec.slos):
        check(slo.process, ("body", "slos", i))
    for where, actions in (("method", spec.fault.method), ("rollbacks", spec.fault.rollbacks)):
        action: ChaosAction
        for i, action in enumerate(actions):
            check(action.process, ("body", "fault", where, i))


def _samples(spec: ExperimentSpec, errors: list[FieldError]) -> None:
    interval = spec.monitoring_interval_s
    for field in ("duration_s", "baseline_window_s", "recovery_timeout_s"):
        seconds = getattr(spec, field)
        if seconds / interval > MAX_SAMPLES:
            errors.append(
                FieldError(
                    ("body", field),
                    f"{seconds:g} s at a monitoring interval of {interval:g} s is more than {MAX_SAMPLES} "
                    "samples; raise monitoring_interval_s",
                )
            )


async def _promql(
    spec: ExperimentSpec, settings: Settings, http: httpx.AsyncClient, errors: list[FieldError]
) -> None:
    queries: list[tuple[Loc, str]] = [
        (("body", "slos", i, "query"), slo.query)
        for i, slo in enumerate(spec.slos)
        if slo.kind == PROMETHEUS_SLO
    ]
    if spec.preflight.alerts_query:
        queries.append((("body", "preflight", "alerts_query"), spec.preflight.alerts_query))
    if not queries:
        return
    if settings.prometheus_url is None:
        errors.extend(
            FieldError(loc, "no Prometheus is configured to run this query; set CRUCIBLE_PROMETHEUS_URL")
            for loc, _ in queries
        )
        return
    prometheus = PrometheusClient(http, settings.prometheus_url)
    for loc, query in queries:
        try:
            await prometheus.validate(with_experiment(query, "chaos-check"))
        except PrometheusQueryError as exc:
            errors.append(FieldError(loc, f"Prometheus cannot run this query: {exc}"))
        except PrometheusUnavailableError as exc:
            raise DependencyUnavailableError("Prometheus", str(exc)) from None


async def experiment_spec(
    body: ExperimentCreate, settings: Settings, http: httpx.AsyncClient, *, source: str = "api"
) -> ExperimentSpec:
    """The experiment ``body`` asks for; `InvalidRequestError` lists everything wrong with it."""
    errors: list[FieldError] = []
    spec = ExperimentSpec(
        name=body.name,
        target=body.target,
        fault=_fault(body, settings, errors),
        slos=[slo.to_slo() for slo in body.slos],
        duration_s=body.duration_s,
        monitoring_interval_s=body.monitoring_interval_s,
        baseline_window_s=body.baseline_window_s,
        recovery_timeout_s=body.recovery_timeout_s,
        preflight=body.preflight.to_checks(),
        schedule=body.schedule.to_schedule(),
        steady_probes=[p.to_probe() for p in body.steady_probes],
        description=body.description,
        created_by=body.created_by,
        source=source,
    )
    await check_spec(spec, settings, http, errors)
    return spec


async def check_spec(
    spec: ExperimentSpec, settings: Settings, http: httpx.AsyncClient, errors: list[FieldError] | None = None
) -> None:
    """The checks every experiment passes, created or imported; raises with ``errors`` and its own."""
    errors = list(errors or [])
    names = [slo.name for slo in spec.slos]
    errors.extend(
        FieldError(("body", "slos", i, "name"), "another SLO has this name")
        for i, name in enumerate(names)
        if name in names[:i]
    )
    _samples(spec, errors)
    _commands(spec, CommandAllowlist.parse(settings.chaos_commands), errors)
    await _promql(spec, settings, http, errors)
    if errors:
        raise InvalidRequestError(errors)
