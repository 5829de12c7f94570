"""Request and response models of chaos experiments, and how a request becomes an `ExperimentSpec`.

Pydantic checks each field's shape; :func:`experiment_spec` then checks what needs the
settings (a chaos proxy to reach, commands on the allowlist) and the provider's own
parameters, and reports every problem at once, field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crucible.activities.chaos_process import SIGNALS as PROCESS_SIGNALS
from crucible.api.field_rules import NOT_BLANK, PY_SPACE, any_case, given
from crucible.api.request_models import HttpMethod, RequestUrl, SmallJson
from crucible.core.chaos.model import (
    OPERATORS,
    PROVIDERS,
    ChaosAction,
    HttpCall,
    PreflightChecks,
    ProcessCall,
    ScheduleSpec,
    Slo,
    SteadyProbe,
)

#: An experiment may take at most this many samples in one phase: its history stays bounded.
MAX_SAMPLES = 1000
MAX_SECONDS = 7 * 24 * 3600.0
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]*$")]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpCallModel(_Model):
    url: RequestUrl
    method: HttpMethod = "GET"
    body: SmallJson = None
    headers: dict[str, str] = Field(default_factory=dict, description="Sent as given (not secret).")
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Statuses that count as success; empty: any below 400."
    )

    def to_call(self) -> HttpCall:
        return HttpCall(
            self.url, self.method, self.body, dict(self.headers), self.timeout_s, list(self.expected_status)
        )


class ProcessCallModel(_Model):
    command: list[str] = Field(min_length=1, description="Executable and arguments; no shell.")
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    expected_exit: list[int] = Field(default_factory=lambda: [0])

    def to_call(self) -> ProcessCall:
        return ProcessCall(list(self.command), self.timeout_s, list(self.expected_exit))


#: _complete's rules: what each kind of SLO needs (a missing kind is prometheus).
_SLO_KINDS: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["query", "threshold"],
            "properties": {
                "kind": {"const": "prometheus"},
                "query": {"type": "string", "minLength": 1},
                "threshold": {"type": "number"},
            },
        },
        {"required": ["kind", "http"], "properties": {"kind": {"const": "http"}, "http": {"type": "object"}}},
        {
            "required": ["kind", "process"],
            "properties": {"kind": {"const": "process"}, "process": {"type": "object"}},
        },
    ]
}


class SloModel(_Model):
    model_config = ConfigDict(json_schema_extra=_SLO_KINDS)

    name: Name
    kind: Literal["prometheus", "http", "process"] = "prometheus"
    query: str | None = Field(
        None,
        max_length=4000,
        description="PromQL; `$experiment` stands for the run id (for the steady probes' metrics).",
    )
    op: Literal["<", "<=", ">", ">=", "==", "!="] = "<"
    threshold: float | None = None
    unit: str = Field("", max_length=20)
    no_data: Literal["breach", "ok"] = Field("breach", description="What a query with no data counts as.")
    http: HttpCallModel | None = None
    process: ProcessCallModel | None = None

    @model_validator(mode="after")
    def _complete(self) -> SloModel:
        if self.kind == "prometheus" and (not self.query or self.threshold is None):
            raise ValueError("a prometheus SLO needs `query` and `threshold`")
        if self.kind == "http" and self.http is None:
            raise ValueError("an http SLO needs `http`")
        if self.kind == "process" and self.process is None:
            raise ValueError("a process SLO needs `process`")
        return self

    def to_slo(self) -> Slo:
        assert self.op in OPERATORS
        return Slo(
            self.name,
            self.kind,
            self.query or "",
            self.op,
            self.threshold or 0.0,
            self.unit,
            self.no_data,
            self.http.to_call() if self.http else None,
            self.process.to_call() if self.process else None,
        )


class SteadyProbeModel(HttpCallModel):
    name: Name
    rate_per_s: Annotated[float, Field(gt=0, le=200)] = 5.0

    def to_probe(self) -> SteadyProbe:
        return SteadyProbe(self.name, self.to_call(), self.rate_per_s)


class ActionModel(_Model):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [given("http", "object", "process"), given("process", "object", "http")]}
    )

    name: Name
    http: HttpCallModel | None = None
    process: ProcessCallModel | None = None
    pause_before_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    pause_after_s: Annotated[float, Field(ge=0, le=3600)] = 0.0

    @model_validator(mode="after")
    def _one_call(self) -> ActionModel:
        if (self.http is None) == (self.process is None):
            raise ValueError("an action has exactly one of `http` and `process`")
        return self

    def to_action(self) -> ChaosAction:
        return ChaosAction(
            self.name,
            self.http.to_call() if self.http else None,
            self.process.to_call() if self.process else None,
            self.pause_before_s,
            self.pause_after_s,
        )


_SIGNAL = (
    rf"^[{PY_SPACE}]*([Ss][Ii][Gg])?("
    + "|".join(any_case(s.removeprefix("SIG")) for s in PROCESS_SIGNALS)
    + rf")[{PY_SPACE}]*$"
)
#: What process_params_from_dict checks (chaos_process), as a schema.
_PROCESS_PARAMS: dict[str, Any] = {
    "type": "object",
    "required": ["match"],
    "properties": {
        "match": {"type": "string", "pattern": NOT_BLANK},
        "signal": {"type": "string", "pattern": _SIGNAL},
        "restart": {"type": "boolean"},
        "restart_grace_s": {"type": "number", "minimum": 0},
        "max_processes": {"type": "integer", "minimum": 1},
        "ready_timeout_s": {"type": "number", "minimum": 0},
    },
    "additionalProperties": False,
}
#: What pod_params_from_dict checks (chaos_kubernetes), as a schema.
_POD_PARAMS: dict[str, Any] = {
    "type": "object",
    "required": ["label_selector"],
    "properties": {
        "label_selector": {"type": "string", "pattern": NOT_BLANK},
        "namespace": {"type": "string", "pattern": NOT_BLANK},
        "count": {"type": "integer", "minimum": 1},
        "grace_period_s": {"type": "integer", "minimum": 0},
        "ready_timeout_s": {"type": "number", "minimum": 0},
    },
    "additionalProperties": False,
}


def _by_params(provider: str, params: dict[str, Any]) -> dict[str, Any]:
    """A provider whose fault its ``params`` describe: it takes no actions."""
    return {
        "required": ["params"],
        "properties": {
            "provider": {"const": provider},
            "params": params,
            "method": {"maxItems": 0},
            "rollbacks": {"maxItems": 0},
        },
    }


#: What _actions and chaos_spec's _proxy_params say of each provider, and its params' checks.
_PROVIDERS: dict[str, Any] = {
    "anyOf": [
        _by_params(
            "proxy",
            {
                "required": ["proxy", "fault"],
                "properties": {
                    "proxy": {"type": "string", "minLength": 1},
                    "fault": {"type": "object"},
                    # Unset: the server's CRUCIBLE_CHAOS_PROXY_URL.
                    "control_url": {"type": "string", "pattern": "^https?://"},
                },
                "additionalProperties": False,
            },
        ),
        _by_params("process", _PROCESS_PARAMS),
        _by_params("kubernetes", _POD_PARAMS),
        {"required": ["method"], "properties": {"provider": {"const": "actions"}, "method": {"minItems": 1}}},
    ]
}


class FaultModel(_Model):
    model_config = ConfigDict(json_schema_extra=_PROVIDERS)

    provider: Literal["proxy", "process", "kubernetes", "actions"]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="proxy: proxy, fault, control_url; process: match, signal, restart; "
        "kubernetes: namespace, label_selector, count, grace_period_s, ready_timeout_s.",
    )
    method: list[ActionModel] = Field(default_factory=list, description="actions: what injects the fault.")
    rollbacks: list[ActionModel] = Field(default_factory=list, description="actions: what undoes it.")

    @model_validator(mode="after")
    def _actions(self) -> FaultModel:
        assert self.provider in PROVIDERS
        if self.provider == "actions" and not self.method:
            raise ValueError("an actions fault needs at least one `method` action")
        if self.provider != "actions" and (self.method or self.rollbacks):
            raise ValueError("`method` and `rollbacks` belong to the actions provider")
        return self


class PreflightModel(_Model):
    alerts_query: str = Field(
        'ALERTS{alertstate="firing"}', max_length=4000, description="PromQL; any series blocks. Empty: none."
    )
    slos_green: bool = True
    deployment_check: HttpCallModel | None = Field(
        None, description="Blocks when it fails: e.g. an endpoint that fails after a recent deployment."
    )
    warmup_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    retries: Annotated[int, Field(ge=0, le=100)] = 0
    retry_interval_s: Annotated[float, Field(gt=0, le=86400)] = 60.0

    def to_checks(self) -> PreflightChecks:
        return PreflightChecks(
            self.alerts_query,
            self.slos_green,
            self.deployment_check.to_call() if self.deployment_check else None,
            self.warmup_s,
            self.retries,
            self.retry_interval_s,
        )


class WindowModel(_Model):
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> WindowModel:
        if self.end <= self.start:
            raise ValueError("the window must end after it starts")
        if self.start.tzinfo is None:
            raise ValueError("give times with a time zone, like 2026-11-22T10:00:00Z")
        return self


class ScheduleModel(_Model):
    start_at: datetime | None = Field(None, description="Start at this time (with a time zone).")
    window: WindowModel | None = Field(None, description="Start only inside this window; missed: Postponed.")

    def to_schedule(self) -> ScheduleSpec:
        return ScheduleSpec(
            self.start_at.timestamp() if self.start_at else None,
            self.window.start.timestamp() if self.window else None,
            self.window.end.timestamp() if self.window else None,
        )


class TimingModel(_Model):
    """The timing fields a created and an imported experiment share."""

    monitoring_interval_s: Annotated[float, Field(ge=0.5, le=3600)] = 10.0
    baseline_window_s: Annotated[float, Field(ge=0, le=86400)] = 30.0
    recovery_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 120.0
    preflight: PreflightModel = Field(default_factory=PreflightModel)
    schedule: ScheduleModel = Field(default_factory=ScheduleModel)
    steady_probes: list[SteadyProbeModel] = Field(default_factory=list, max_length=20)
    created_by: str = Field("", max_length=200, description="Who creates it; someone else must approve.")


class ExperimentCreate(TimingModel):
    name: Name
    description: str = Field("", max_length=2000)
    target: str = Field(min_length=1, max_length=500, description="What is under test: a URL or a name.")
    fault: FaultModel
    duration_s: Seconds
    slos: list[SloModel] = Field(min_length=1, max_length=50, description="The steady-state hypothesis.")


class ImportOverrides(TimingModel):
    """What an import may set that a Chaos Toolkit file does not say; each checked as on create."""

    # Other keys are kept so the route can name them all at once ("cannot be overridden");
    # the schema says they are refused.
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    def unknown(self) -> list[str]:
        """The keys given that are not overrides."""
        return sorted(self.model_extra or {})

    target: str | None = Field(None, min_length=1, max_length=500)
    duration_s: Seconds | None = None
    slos: list[SloModel] = Field(default_factory=list, max_length=50, description="Extra PromQL SLOs.")

    def given(self) -> dict[str, Any]:
        """The fields the request gave, as `ExperimentSpec` takes them."""
        converted: dict[str, Any] = {
            "preflight": self.preflight.to_checks(),
            "schedule": self.schedule.to_schedule(),
            "steady_probes": [p.to_probe() for p in self.steady_probes],
            "slos": [s.to_slo() for s in self.slos],
        }
        return {name: converted.get(name, getattr(self, name)) for name in self.model_fields_set}


class ExperimentImport(_Model):
    """A Chaos Toolkit experiment, with what Crucible needs that the file does not say."""

    experiment: dict[str, Any] | str = Field(description="The Chaos Toolkit experiment: JSON or YAML.")
    overrides: ImportOverrides = Field(
        default_factory=ImportOverrides,
        description="target, duration_s, monitoring_interval_s, baseline_window_s, recovery_timeout_s, "
        "preflight, schedule, steady_probes, slos (extra PromQL SLOs), created_by.",
    )


class ReviewBody(_Model):
    """A review step's note. The step is recorded as the signed-in user's (their email)."""

    comment: str = Field("", max_length=2000)


class ExperimentLinks(BaseModel):
    status: str
    events: str
    stream: str
    report: str
    submit: str
    approve: str
    request_changes: str
    abort: str
    cancel: str
    temporal_ui: str


class ExperimentAccepted(BaseModel):
    run_id: str
    state: str
    links: ExperimentLinks


class ReviewAccepted(BaseModel):
    run_id: str
    signal: str
    state: str | None
    by: str = Field(description="Who took the step: the signed-in user's email.")
