"""The dataclasses the saga test workflow, its activities and the API exchange.

Header values are secrets: a test carries the id of one secret that holds the headers of
its trigger and of its fault's requests (``{"trigger": {…}, "fault": {…}, "rollback": {…}}``).
Event summaries are compact (no payloads), so a test's history stays small.
This module is imported by workflow code: standard library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The requests of a test, as they appear in idempotency keys and in its headers secret.
TRIGGER, FAULT, ROLLBACK = "trigger", "fault", "rollback"

#: Assertion names, in the order a test reports them.
TRIGGER_ACCEPTED = "trigger_accepted"
EXPECTED_ORDER = "expected_events_in_order"
NO_DUPLICATES = "no_duplicates"
NO_REPEATED_TYPES = "no_repeated_types"
COMPENSATION_COMPLETE = "compensation_complete"
RECOVERY_TIME = "recovery_within"
FAULT_ROLLED_BACK = "fault_rolled_back"

PASSED, FAILED = "PASSED", "FAILED"


@dataclass
class RequestSpec:
    """An HTTP request the test sends: its trigger, a fault or a fault's rollback."""

    method: str
    url: str
    body: Any = None
    #: The headers' names; their values are in the test's headers secret, under the request's role.
    header_names: list[str] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        """The request as events show it: method, URL and header names, never header values."""
        return {"method": self.method, "url": self.url, "header_names": self.header_names}


@dataclass
class ProcessFault:
    """Send ``signal`` to the process ``pid`` on the worker's machine (until chaos providers land).

    The worker signals only processes whose command line holds one of its
    ``CRUCIBLE_FAULT_PROCESSES`` markers (see :mod:`crucible.core.saga_tests.processes`).
    """

    pid: int
    signal: str = "SIGSTOP"


@dataclass
class FaultPlan:
    """What to break, when, and how to put it back.

    ``when`` is ``before`` (between subscribing and the trigger) or ``after`` (right after the
    trigger). The rollback runs ``duration_s`` after the injection, or, unset, once the events
    are collected; it always runs, also when the test fails or is cancelled.
    """

    http: RequestSpec | None = None
    process: ProcessFault | None = None
    rollback_http: RequestSpec | None = None
    rollback_signal: str | None = None
    when: str = "before"
    duration_s: float | None = None

    def shown(self) -> dict[str, Any]:
        """The fault as events show it: its requests without header values."""
        return {
            "when": self.when,
            "http": self.http.shown() if self.http else None,
            "process": asdict(self.process) if self.process else None,
            "rollback_http": self.rollback_http.shown() if self.rollback_http else None,
            "rollback_signal": self.rollback_signal,
            "duration_s": self.duration_s,
        }


@dataclass
class SagaTestSpec:
    """What a saga test watches, triggers and expects; checked by the API."""

    topics: list[str]
    trigger: RequestSpec
    expected_events: list[str]
    correlation_id: str | None = None
    #: A JSONPath into the trigger's JSON response, when ``correlation_id`` is not given.
    correlation_from: str | None = None
    correlation_path: str = "$.order_id"
    type_path: str = "$.type"
    #: Where an event's own time is (ISO 8601); events without one are placed by their Kafka timestamp.
    time_path: str | None = "$.at"
    #: The event that starts compensation; unset: the first expected event that sounds like a failure.
    failure_event: str | None = None
    #: Unset: the expected events after the failure event.
    compensation_events: list[str] | None = None
    recovery_within_s: float | None = 60.0
    allow_other_events: bool = False
    settle_s: float = 2.0
    timeout_s: float = 60.0
    fault: FaultPlan | None = None
    headers_secret: str | None = None
    #: Where an event's value holds its id: two messages with one id are one event delivered twice.
    #: Messages without one are told apart by their value's digest.
    event_id_path: str | None = "$.event_id"
    #: Types that may be seen in more than one event (a retried payment, say).
    allow_repeated_types: list[str] = field(default_factory=list)


@dataclass
class SagaTestInput:
    test: SagaTestSpec
    #: How soon a consumer on a worker that died is given to another.
    heartbeat_timeout_s: float = 10.0


@dataclass
class MarkTopicEndsInput:
    topics: list[str]


@dataclass
class TopicOffsets:
    """Where each partition of each topic ends: ``{topic: {partition: next offset}}``.

    Partitions are strings, as JSON keys are.
    """

    offsets: dict[str, dict[str, int]]


@dataclass
class TriggerInput:
    run_id: str
    request: RequestSpec
    headers_secret: str | None = None
    correlation_from: str | None = None


@dataclass
class TriggerResult:
    status: int
    elapsed_ms: float
    correlation_id: str | None = None
    #: Why no correlation id could be captured, when one was asked for.
    problem: str | None = None


@dataclass
class FaultRequestInput:
    """The fault's request, or its rollback's: ``phase`` is ``fault`` or ``rollback``."""

    run_id: str
    phase: str
    http: RequestSpec
    headers_secret: str | None = None


@dataclass
class FaultRequestResult:
    status: int


@dataclass
class InspectProcessInput:
    pid: int


@dataclass
class ProcessIdentity:
    """The process a fault signals, as it was when inspected: a pid and its start time name it."""

    pid: int
    #: Clock ticks after boot (``/proc/<pid>/stat`` field 22).
    started: int
    #: The ``CRUCIBLE_FAULT_PROCESSES`` marker its command line holds.
    marker: str


@dataclass
class SignalProcessInput:
    """Send ``signal`` to ``process`` if the pid still names it; ``phase`` is ``fault`` or ``rollback``."""

    phase: str
    process: ProcessIdentity
    signal: str


@dataclass
class SignalProcessResult:
    signalled: bool
    #: Why not, when not.
    note: str | None = None


@dataclass
class FaultActionResult:
    """What one half of a fault did, as its event shows it."""

    status: int | None = None
    signalled: bool = False
    note: str | None = None


@dataclass
class CollectEventsInput:
    offsets: TopicOffsets
    correlation_id: str
    expected_types: list[str]
    correlation_path: str = "$.order_id"
    type_path: str = "$.type"
    time_path: str | None = "$.at"
    settle_s: float = 2.0
    #: Seconds since the epoch when collection gives up waiting for the expected events.
    deadline: float = 0.0
    event_id_path: str | None = "$.event_id"


@dataclass
class EventSummary:
    """One collected event, without its payload."""

    type: str
    topic: str
    partition: int
    offset: int
    #: The event's time, ISO 8601 UTC: its own (``time_path``) or else its Kafka timestamp; None
    #: when it has neither.
    timestamp: str | None
    #: ``timestamp`` in seconds since the epoch, for ordering and recovery times.
    time_s: float | None
    key: str | None = None
    #: The first 12 hex digits of the value's SHA-256: equal digests are the same message twice.
    digest: str = ""
    #: The event's own id (``event_id_path``), when it has one.
    event_id: str | None = None

    @property
    def identity(self) -> str:
        """What makes two messages one event: its id, or else its value."""
        return f"id {self.event_id}" if self.event_id is not None else f"digest {self.digest}"


@dataclass
class CollectedEvents:
    """What the consumer has collected: its heartbeat while it reads (so a retry carries on where
    the last attempt stopped), and its result."""

    #: Where the consumer stands: ``{topic: {partition: next offset}}``.
    positions: dict[str, dict[str, int]]
    #: The events that carry the correlation id (at most a bound; see ``matched``), ordered in
    #: the result: by offset within a partition, merged across partitions by time.
    events: list[EventSummary] = field(default_factory=list)
    matched: int = 0
    #: Messages read on the topics, of any correlation id.
    read: int = 0
    not_json: int = 0
    #: Messages with the correlation id but no type at ``type_path``.
    untyped: int = 0
    #: Seconds since the epoch when every expected type had been seen; settling ends ``settle_s`` later.
    complete_at: float | None = None
    #: Whether the deadline came before every expected type did.
    timed_out: bool = False


@dataclass
class AssertionResult:
    name: str
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SagaTestResult:
    verdict: str
    correlation_id: str | None
    assertions: list[AssertionResult]
    observed: list[str] = field(default_factory=list)
