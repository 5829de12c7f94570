"""The dataclasses a chaos experiment's workflow, its activities and the API exchange.

An experiment names a fault (a provider and its parameters), the SLOs of its steady-state
hypothesis, the checks that must pass before anything is broken, and its timing. The API
checks a definition fully before a workflow ever sees it. This module is imported by
workflow code: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Providers ------------------------------------------------------------------------------

PROXY, PROCESS, KUBERNETES, ACTIONS = "proxy", "process", "kubernetes", "actions"
PROVIDERS = (PROXY, PROCESS, KUBERNETES, ACTIONS)

# SLO kinds: a PromQL expression, or a check the worker makes itself (Chaos Toolkit probes).
PROMETHEUS_SLO, HTTP_SLO, PROCESS_SLO = "prometheus", "http", "process"

# Phases of an SLO measurement (the SLO_MEASUREMENTS table's ``phase``).
PREFLIGHT, BASELINE, CHAOS, RECOVERY = "preflight", "baseline", "chaos", "recovery"

#: What a query that returns no data counts as.
NO_DATA_BREACH, NO_DATA_OK = "breach", "ok"

#: Replaced by the experiment's run id in PromQL, so a query can pick its own steady probes.
EXPERIMENT_PLACEHOLDER = "$experiment"

#: The comparisons an SLO may make: the measured value ``op`` the threshold must hold.
OPERATORS = ("<", "<=", ">", ">=", "==", "!=")


def with_experiment(query: str, run_id: str) -> str:
    """The PromQL ``query`` with :data:`EXPERIMENT_PLACEHOLDER` standing for ``run_id``."""
    return query.replace(EXPERIMENT_PLACEHOLDER, run_id)


def worst(values: list[float], op: str) -> float:
    """The value that judges an SLO: the one furthest on the wrong side of its threshold."""
    return max(values) if op in ("<", "<=") else min(values)


def compare(value: float, op: str, threshold: float) -> bool:
    """Whether ``value op threshold`` holds."""
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "==":
        return value == threshold
    if op == "!=":
        return value != threshold
    raise ValueError(f"unknown operator {op!r}")


@dataclass
class HttpCall:
    """One HTTP request a probe, SLO check or action makes. No secret headers (yet)."""

    url: str
    method: str = "GET"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 5.0
    #: The statuses that count as success; empty: any status below 400.
    expected_status: list[int] = field(default_factory=list)


@dataclass
class ProcessCall:
    """One command a process SLO check or action runs; its executable must be on the allowlist."""

    command: list[str]
    timeout_s: float = 30.0
    #: The exit codes that count as success.
    expected_exit: list[int] = field(default_factory=lambda: [0])


@dataclass
class Slo:
    """One SLO of the steady-state hypothesis.

    ``prometheus``: ``query`` is PromQL; its value (the largest, when it returns several series)
    must satisfy ``op threshold``. ``http``/``process``: the check's status or exit code is the
    value, and the SLO is met when the check succeeds.
    """

    name: str
    kind: str = PROMETHEUS_SLO
    query: str = ""
    op: str = "<"
    threshold: float = 0.0
    unit: str = ""
    no_data: str = NO_DATA_BREACH
    http: HttpCall | None = None
    process: ProcessCall | None = None

    def target(self) -> str:
        """The SLO as a reader sees it: ``p99_ms < 300`` or ``http GET https://…``."""
        if self.kind == PROMETHEUS_SLO:
            return f"{self.op} {self.threshold:g}{self.unit and ' ' + self.unit}"
        if self.http is not None:
            return f"{self.http.method} {self.http.url} succeeds"
        return "command succeeds"


@dataclass
class SteadyProbe:
    """HTTP requests at a fixed rate, through the address clients use: load, and what SLOs see.

    Their latency and outcome are exported as ``crucible_probe_*`` metrics with the labels
    ``experiment`` (the run id) and ``probe`` (this name).
    """

    name: str
    http: HttpCall
    rate_per_s: float = 5.0


@dataclass
class ChaosAction:
    """One step of a Chaos Toolkit method or rollback: an HTTP call or a command, with pauses."""

    name: str
    http: HttpCall | None = None
    process: ProcessCall | None = None
    pause_before_s: float = 0.0
    pause_after_s: float = 0.0
    #: A probe's result is recorded; an action that fails fails the injection (or the rollback).
    is_probe: bool = False


@dataclass
class FaultSpec:
    """The fault and its provider. ``params`` holds the provider's own parameters:

    - ``proxy``: ``control_url``, ``proxy`` (its name) and ``fault`` (a ``fault_to_dict`` object);
    - ``process``: ``match`` (a command-line substring), ``signal`` and ``restart``;
    - ``kubernetes``: ``namespace``, ``label_selector``, ``count``, ``grace_period_s``,
      ``ready_timeout_s``;
    - ``actions``: nothing; see ``method`` and ``rollbacks``.
    """

    provider: str
    params: dict[str, Any] = field(default_factory=dict)
    method: list[ChaosAction] = field(default_factory=list)
    rollbacks: list[ChaosAction] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"provider": self.provider, **self.params}
        if self.method:
            shown["method"] = [a.name for a in self.method]
            shown["rollbacks"] = [a.name for a in self.rollbacks]
        return shown


@dataclass
class PreflightChecks:
    """What must hold before anything is broken; any failure ends the run ``Blocked``."""

    #: PromQL for alerts that block the experiment; any series returned blocks. Empty: no check.
    alerts_query: str = 'ALERTS{alertstate="firing"}'
    #: Every SLO must be met now.
    slos_green: bool = True
    #: An HTTP check that fails when there was a recent deployment (a non-success status blocks).
    deployment_check: HttpCall | None = None
    #: How long the steady probes run before the SLOs are first judged.
    warmup_s: float = 5.0
    #: Retries of a blocked pre-flight (``Blocked --> Scheduled``), ``retry_interval_s`` apart.
    retries: int = 0
    retry_interval_s: float = 60.0


@dataclass
class ScheduleSpec:
    """When to run: now, at ``start_at``, or inside ``[window_start, window_end]`` (epoch seconds).

    An experiment approved after its window closed, or whose pre-flight retries run past it,
    ends ``Postponed``.
    """

    start_at: float | None = None
    window_start: float | None = None
    window_end: float | None = None


@dataclass
class ExperimentSpec:
    """A whole chaos experiment, as the API checked it."""

    name: str
    target: str
    fault: FaultSpec
    slos: list[Slo]
    duration_s: float
    monitoring_interval_s: float = 10.0
    baseline_window_s: float = 30.0
    recovery_timeout_s: float = 120.0
    preflight: PreflightChecks = field(default_factory=PreflightChecks)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    steady_probes: list[SteadyProbe] = field(default_factory=list)
    description: str = ""
    #: Who created it; signals that approve must come from someone else.
    created_by: str = ""
    #: Where it came from: ``api`` or ``chaostoolkit``.
    source: str = "api"


@dataclass
class ExperimentInput:
    spec: ExperimentSpec
    #: Skip review (``CRUCIBLE_CHAOS_AUTO_APPROVE``): the run starts in ``Approved``.
    auto_approve: bool = False
    #: Heartbeat timeout of the steady probes, so a dead worker's probes restart elsewhere.
    heartbeat_timeout_s: float = 10.0


@dataclass
class ReviewSignal:
    """``submit``, ``approve`` and ``request_changes`` carry who sends them and why."""

    by: str = ""
    comment: str = ""


@dataclass
class SloMeasurement:
    """One row of SLO_MEASUREMENTS: an SLO's value at one moment of one phase."""

    slo: str
    phase: str
    #: Epoch seconds.
    at: float
    value: float | None
    met: bool
    #: Why a value is missing, or what a check returned.
    note: str = ""


@dataclass
class MeasureSlosInput:
    run_id: str
    slos: list[Slo]
    phase: str
    #: The sample's number in its phase, from 1: with the phase, the measurement's key.
    sample: int = 1


@dataclass
class AlertsInput:
    query: str


@dataclass
class FiringAlerts:
    alerts: list[dict[str, str]]


@dataclass
class SloResult:
    """One row of CHAOS_RESULTS: an SLO's baseline, chaos and recovery values."""

    slo: str
    target: str
    unit: str
    baseline: float | None
    chaos: float | None
    recovery: float | None
    #: Worst value seen during the chaos phase, and whether every chaos sample met the SLO.
    chaos_met: bool


@dataclass
class RecordResultsInput:
    run_id: str
    results: list[SloResult]


@dataclass
class ExperimentResult:
    state: str
    verdict: str | None
    reason: str | None = None
    recovery_time_s: float | None = None
    results: list[SloResult] = field(default_factory=list)
