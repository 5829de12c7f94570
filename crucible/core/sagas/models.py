"""The dataclasses the saga workflow, its activities and the API exchange.

A saga is ordered steps, each an action with an optional compensation and an optional
verify request; every call is an HTTP request or a Kafka publish. Header values are
secrets: a step carries the id of one secret that holds the headers of its three calls.
This module is imported by workflow code, through ``imports_passed_through()``: the
standard library, ``temporalio`` and the header's name from :mod:`crucible.core.http`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio.common import RetryPolicy

# Re-exported: the API's request models refuse a step that sets this header itself.

#: The three calls of a step, as they appear in idempotency keys.
ACTION, COMPENSATION, VERIFY = "action", "compensation", "verify"

#: Outcomes of a step's compensation: of every completed step, and of a failed or interrupted
#: step that may have taken effect (``COMPENSATED_UNCERTAIN`` when its compensation ran).
COMPENSATED = "compensated"
COMPENSATED_UNCERTAIN = "compensated (outcome uncertain)"
NO_COMPENSATION = "no compensation"
MARKED_RESOLVED = "marked resolved"
NOT_COMPENSATED = "not compensated"
#: A failed or interrupted step that may have taken effect, left as it is: the step does not
#: ask for its compensation then (``compensate_if_uncertain``).
LEFT_UNCERTAIN = "not compensated (outcome uncertain)"
#: The outcomes of a step that the saga itself left with nothing to undo.
UNDONE = frozenset({COMPENSATED, COMPENSATED_UNCERTAIN, NO_COMPENSATION})


def idempotency_key(run_id: str, step: int, phase: str) -> str:
    """``<run id>-step<N>-<action|compensation|verify>``: the same for every attempt of a call."""
    return f"{run_id}-step{step}-{phase}"


@dataclass
class HttpCall:
    method: str
    url: str
    body: Any = None
    #: The headers' names; their values are in the step's headers secret.
    header_names: list[str] = field(default_factory=list)


@dataclass
class KafkaCall:
    topic: str
    value: Any = None
    key: str | None = None


@dataclass
class Expectation:
    """What a verify request must answer: ``status`` (unset: any 2xx) and values at JSONPaths."""

    status: int | None = None
    json: dict[str, Any] = field(default_factory=dict)


@dataclass
class SagaCall:
    """An action, compensation or verify request: ``http`` or ``kafka``, never both."""

    http: HttpCall | None = None
    kafka: KafkaCall | None = None
    #: Variable name to JSONPath into the JSON response (actions over HTTP).
    capture: dict[str, str] = field(default_factory=dict)
    expect: Expectation | None = None

    def describe(self) -> str:
        """``POST http://shop/orders`` or ``kafka orders``, for events and summaries."""
        if self.http is not None:
            return f"{self.http.method} {self.http.url}"
        assert self.kafka is not None
        return f"kafka {self.kafka.topic}"


@dataclass
class SagaRetry:
    """A step's retry policy; its action, compensation and verify request each retry by it."""

    max_attempts: int = 3
    initial_interval_s: float = 1.0
    backoff: float = 2.0
    max_interval_s: float = 30.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self.initial_interval_s),
            backoff_coefficient=self.backoff,
            maximum_interval=timedelta(seconds=max(self.max_interval_s, self.initial_interval_s)),
            maximum_attempts=self.max_attempts,
        )


@dataclass
class SagaStep:
    name: str
    action: SagaCall
    compensation: SagaCall | None = None
    verify: SagaCall | None = None
    retry: SagaRetry = field(default_factory=SagaRetry)
    #: How long one attempt of one call may take.
    timeout_s: float = 30.0
    #: A secret ``{"action": {name: value}, "compensation": {…}, "verify": {…}}``.
    headers_secret: str | None = None
    #: Whether to compensate this step when its action failed (or was interrupted) in a way
    #: that may have taken effect: a timeout, a 5xx, a lost connection. Off, the step is
    #: reported as uncertain and left as it is.
    compensate_if_uncertain: bool = False

    def shown(self, index: int) -> dict[str, Any]:
        """The step as events show it: its calls described, what it captures by name."""
        return {
            "step": index,
            "name": self.name,
            "action": self.action.describe(),
            "capture": sorted(self.action.capture),
            "compensation": self.compensation.describe() if self.compensation else None,
            "verify": self.verify.describe() if self.verify else None,
            "retry": asdict(self.retry),
            "timeout_s": self.timeout_s,
        }

    def call_input(
        self, run_id: str, index: int, phase: str, call: SagaCall, variables: dict[str, Any]
    ) -> SagaCallInput:
        """One of the step's calls, with the variables its templates may use now."""
        return SagaCallInput(
            run_id=run_id,
            step=index,
            phase=phase,
            call=call,
            variables=dict(variables),
            headers_secret=self.headers_secret,
            timeout_s=self.timeout_s,
        )


@dataclass
class SagaInput:
    name: str
    steps: list[SagaStep]
    #: How soon a call on a worker that died is given to another.
    heartbeat_timeout_s: float = 10.0


@dataclass
class SagaCallInput:
    """One call of one step, with the variables its templates may use."""

    run_id: str
    step: int
    phase: str
    call: SagaCall
    variables: dict[str, Any] = field(default_factory=dict)
    headers_secret: str | None = None
    timeout_s: float = 30.0

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.run_id, self.step, self.phase)


@dataclass
class SagaCallResult:
    #: The HTTP status; None for a Kafka publish.
    status: int | None = None
    attempt: int = 1
    captured: dict[str, Any] = field(default_factory=dict)
    #: Where a Kafka publish landed.
    partition: int | None = None
    offset: int | None = None


@dataclass
class AbortInput:
    """The ``abort`` signal: compensate every completed step and end ``SagaCancelled``."""

    reason: str | None = None


@dataclass
class ResolveInput:
    """The ``resolve`` signal, for a saga in ``ManualIntervention``.

    ``retry`` runs the failed compensation again (with its retries); ``mark_resolved``
    records ``note`` as how it was put right by hand, and goes on to the next one.
    """

    action: Literal["retry", "mark_resolved"]
    note: str = ""


@dataclass
class CompensationOutcome:
    step: int
    name: str
    #: compensated, compensated (outcome uncertain), no compensation, marked resolved or not compensated.
    outcome: str
    #: How many times the compensation ran (each time with its retries).
    rounds: int = 0
    note: str | None = None


@dataclass
class VerifyOutcome:
    step: int
    name: str
    passed: bool
    reason: str | None = None
    status: int | None = None


@dataclass
class SagaResult:
    """How a saga ended: ``SagaCompleted``, ``SagaCancelled``, or ``ManualIntervention`` when it
    was cancelled while waiting for a resolution.

    Signals that changed nothing are not here: each is a ``SIGNAL_IGNORED`` event.
    """

    state: str
    steps: int
    completed_steps: list[int] = field(default_factory=list)
    failed_step: int | None = None
    #: ``abort`` or ``cancel`` when the saga was stopped rather than failed.
    stopped_by: str | None = None
    reason: str | None = None
    #: Reverse step order, as they ran.
    compensations: list[CompensationOutcome] = field(default_factory=list)
    verifications: list[VerifyOutcome] = field(default_factory=list)
    #: Whether every verify request passed; None when there were none.
    restored: bool | None = None
    #: Whether the saga itself undid every completed step, and the uncertain one (none marked
    #: resolved or left undone).
    fully_compensated: bool | None = None
    #: The step that failed, or was interrupted by ``abort`` or a cancellation, in a way that may
    #: have taken effect (a timeout, a 5xx, a transport error): it is compensated first.
    uncertain_step: int | None = None

    def summary(self) -> dict[str, Any]:
        """The run's summary: the result, with the steps left undone and those marked resolved."""
        return {
            **asdict(self),
            "not_compensated": [
                c.step for c in self.compensations if c.outcome in (NOT_COMPENSATED, LEFT_UNCERTAIN)
            ],
            "marked_resolved": [c.step for c in self.compensations if c.outcome == MARKED_RESOLVED],
        }
