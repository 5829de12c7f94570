"""Request and response models of the saga test routes.

A body is checked in two passes, as batch jobs and sagas are: the model checks each field
on its own (URLs, JSONPaths, topics, event types), then :meth:`SagaTestCreate.errors`
checks what needs the whole test: one source of the correlation id, a failure event and
compensation events that are expected, a fault with something to inject and a rollback
that fits it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from crucible.api.field_rules import given, matches, published
from crucible.api.request_models import (
    MAX_URL_CHARS,
    HttpMethod,
    JsonPathText,
    RequestHeaders,
    RequestUrl,
    SmallJson,
    TopicName,
)
from crucible.core.errors import FieldError, InvalidRequestError
from crucible.core.saga_tests.processes import pid_max

#: 1 to 200 characters, no control characters, not starting or ending in a space.
EVENT_TYPE = r"^[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
EventType = Annotated[
    str,
    Field(max_length=200),
    AfterValidator(matches(EVENT_TYPE, "an event type has no control characters and no space at either end")),
    published(EVENT_TYPE),
]
_UNIQUE: JsonDict = {"uniqueItems": True}


Signal = Literal[
    "SIGSTOP", "SIGCONT", "SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTSTP"
]


class _RequestParts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: HttpMethod = "POST"
    headers: RequestHeaders = Field(default_factory=dict, description="Stored encrypted; names only shown.")
    body: SmallJson = Field(None, description="Sent as JSON; unset: no body.")


class RequestModel(_RequestParts):
    url: RequestUrl = Field(max_length=MAX_URL_CHARS, description="An http(s) URL.")


class RollbackModel(_RequestParts):
    """How to undo the fault: a request (method, url, headers, body), a ``signal`` to the
    faulted process, or both."""

    # _fault_errors' rules on a rollback: a url or a signal; headers and a body need the url.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["url"], "properties": {"url": {"type": "string"}}},
                {
                    "required": ["signal"],
                    "properties": {
                        "signal": {"type": "string"},
                        "headers": {"maxProperties": 0},
                        "body": {"type": "null"},
                    },
                },
            ]
        }
    )

    url: RequestUrl | None = Field(
        None, max_length=MAX_URL_CHARS, description="An http(s) URL; unset: no request."
    )
    signal: Signal | None = Field(
        None, description="Sent to the fault's process; unset: SIGCONT after SIGSTOP or SIGTSTP."
    )


class ProcessModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid: int = Field(
        gt=1,
        json_schema_extra={"maximum": pid_max()},
        description="A process on the worker's machine whose command line holds one of the worker's "
        "CRUCIBLE_FAULT_PROCESSES markers.",
    )
    signal: Signal = "SIGSTOP"

    @field_validator("pid")
    @classmethod
    def _pid(cls, pid: int) -> int:
        highest = pid_max()
        if pid > highest:
            raise ValueError(f"pids on this machine go up to {highest} (/proc/sys/kernel/pid_max)")
        return pid


class FaultModel(BaseModel):
    """A fault: a request (the demo shop's ``POST /admin/faults``, say) and/or a signal to a process."""

    # _fault_errors' rules on a fault: http, process or both; a rollback's signal needs the process.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {"anyOf": [given("http", "object"), given("process", "object")]},
                {
                    "anyOf": [
                        {"properties": {"rollback": {"properties": {"signal": {"type": "null"}}}}},
                        given("process", "object"),
                    ]
                },
            ]
        },
    )

    when: Literal["before", "after"] = Field(
        "before", description="Inject it before the trigger, or right after it."
    )
    http: RequestModel | None = None
    process: ProcessModel | None = None
    rollback: RollbackModel | None = Field(None, description="Runs always, also when the test fails.")
    duration_s: float | None = Field(
        None, gt=0, le=3600, description="Roll back this long after injecting; unset: once events are in."
    )


class SagaTestCreate(BaseModel):
    """A saga test: watch Kafka topics, trigger a business flow, assert the events it causes."""

    # errors()' rule on the correlation id: given, or captured from the response, not both.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                given("correlation_id", "string", "correlation_from"),
                given("correlation_from", "string", "correlation_id"),
            ]
        },
    )

    topics: list[TopicName] = Field(
        min_length=1, max_length=20, description="Read from their current end.", json_schema_extra=_UNIQUE
    )
    trigger: RequestModel
    correlation_id: str | None = Field(None, min_length=1, max_length=200)
    correlation_from: JsonPathText | None = Field(
        None, description="A JSONPath into the trigger's JSON response: `$.order_id`."
    )
    correlation_path: JsonPathText = Field(
        "$.order_id", description="Where an event's value has the correlation id."
    )
    type_path: JsonPathText = Field("$.type", description="Where an event's value holds its type.")
    time_path: JsonPathText | None = Field(
        "$.at", description="Where an event's value holds its time (ISO 8601); else its Kafka timestamp."
    )
    expected_events: list[EventType] = Field(
        min_length=1, max_length=50, description="In the expected order.", json_schema_extra=_UNIQUE
    )
    failure_event: str | None = Field(
        None, description="Unset: the first expected event that sounds like a failure (`PaymentFailed`)."
    )
    compensation_events: list[EventType] | None = Field(
        None,
        max_length=50,
        description="Unset: the expected events after the failure event.",
        json_schema_extra=_UNIQUE,
    )
    recovery_within_s: float | None = Field(
        60.0, gt=0, le=86_400, description="From the failure event to the last compensation event."
    )
    allow_other_events: bool = Field(False, description="Whether unexpected event types may appear.")
    settle_s: float = Field(2.0, ge=0, le=300, description="Keep reading this long after the last expected.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Stop waiting this long after the trigger.")
    fault: FaultModel | None = None
    event_id_path: JsonPathText | None = Field(
        "$.event_id",
        description="Where an event's value holds its id: one id twice is one event delivered twice. "
        "Messages without one are told apart by their value.",
    )
    allow_repeated_types: list[EventType] = Field(
        default_factory=list,
        max_length=50,
        description="Types that may be seen in more than one event (a retried step, say).",
        json_schema_extra=_UNIQUE,
    )

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        if len(set(topics)) != len(topics):
            raise ValueError("list each topic once")
        return topics

    @field_validator("expected_events", "compensation_events", "allow_repeated_types")
    @classmethod
    def _types(cls, types: list[str] | None) -> list[str] | None:
        if types is not None and len(set(types)) != len(types):
            raise ValueError("list each event type once")
        return types

    def errors(self) -> list[FieldError]:
        """What the fields alone cannot show, as field errors under ``body``."""
        errors: list[FieldError] = []
        if (self.correlation_id is None) == (self.correlation_from is None):
            errors.append(
                FieldError(
                    ("body", "correlation_id"),
                    "give the correlation id, or correlation_from to capture it from the trigger's response",
                )
            )
        expected = set(self.expected_events)
        if self.failure_event is not None and self.failure_event not in expected:
            errors.append(FieldError(("body", "failure_event"), f"{self.failure_event} is not expected"))
        for index, name in enumerate(self.compensation_events or []):
            if name not in expected:
                errors.append(
                    FieldError(("body", "compensation_events", index), f"{name} is not in expected_events")
                )
        if self.fault is not None:
            errors += _fault_errors(self.fault)
        return errors

    def check(self) -> None:
        if errors := self.errors():
            raise InvalidRequestError(errors)


def _fault_errors(fault: FaultModel) -> list[FieldError]:
    loc = ("body", "fault")
    errors: list[FieldError] = []
    if fault.http is None and fault.process is None:
        errors.append(FieldError(loc, "give http (a request) or process (a signal to a process), or both"))
    rollback = fault.rollback
    if rollback is None:
        return errors
    if rollback.url is None and rollback.signal is None:
        errors.append(FieldError((*loc, "rollback"), "give a url to request, a signal to send, or both"))
    if rollback.url is None and (rollback.headers or rollback.body is not None):
        errors.append(FieldError((*loc, "rollback", "url"), "headers and body need a url to send them to"))
    if rollback.signal is not None and fault.process is None:
        errors.append(FieldError((*loc, "rollback", "signal"), "a signal goes to the fault's process"))
    return errors


class SagaTestLinks(BaseModel):
    status: str
    events: str
    stream: str
    cancel: str
    temporal_ui: str


class SagaTestAccepted(BaseModel):
    run_id: str
    status: str = "RUNNING"
    correlation_id: str | None = Field(None, description="Unset when it is captured from the trigger.")
    links: SagaTestLinks
