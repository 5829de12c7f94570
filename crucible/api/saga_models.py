"""Request and response models of the saga routes.

A body is checked in two passes, as batch jobs are: the model checks each field on its
own (URLs, JSONPaths, methods, one of ``http`` or ``kafka``), then :meth:`SagaCreate.errors`
checks what needs the whole saga: that every placeholder names ``run_id`` or a value an
earlier step captures (a compensation or verify request of step N may use step N's too).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from crucible.api.field_rules import given
from crucible.api.request_models import (
    MAX_URL_CHARS,
    HttpMethod,
    RequestHeaders,
    SmallJson,
    TemplatedUrl,
    TopicName,
    checked_json_path,
)
from crucible.core.errors import FieldError, InvalidRequestError
from crucible.core.sagas.jsonpath import JSON_PATH
from crucible.core.sagas.templates import NAME, RUN_ID, Where, placeholders


class HttpRequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: HttpMethod = "POST"
    url: TemplatedUrl = Field(
        max_length=MAX_URL_CHARS,
        description="http(s); {{name}} placeholders in its path and query, not its host.",
    )
    headers: RequestHeaders = Field(
        default_factory=dict, description="Stored encrypted; values may hold {{name}} placeholders."
    )
    body: SmallJson = Field(None, description="A JSON template; unset: no body.")


class KafkaMessageModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: TopicName = Field(description="The topic to publish to; it must exist.")
    key: str | None = Field(None, max_length=1024, description="A text template; unset: no key.")
    value: SmallJson = Field(description="A JSON template, published as JSON.")


_HTTP = given("http", "object", "kafka")
_KAFKA = given("kafka", "object", "http")
#: A capture's name: an identifier, not ``run_id`` (its schema: ``propertyNames``).
CAPTURE_NAME = f"^{NAME.pattern}$"
_CAPTURES_SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": CAPTURE_NAME, "not": {"const": RUN_ID}},
    "additionalProperties": {"type": "string", "pattern": JSON_PATH},
}


class CallModel(BaseModel):
    """An HTTP request or a Kafka publish: one of ``http`` and ``kafka``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [_HTTP, _KAFKA]})

    http: HttpRequestModel | None = None
    kafka: KafkaMessageModel | None = None

    @model_validator(mode="after")
    def _one(self) -> CallModel:
        if (self.http is None) == (self.kafka is None):
            raise ValueError("give one of http or kafka")
        return self

    def templates(self, *loc: str | int) -> Iterator[tuple[Where, Any]]:
        """Every part that may hold placeholders, with where it is."""
        if self.http is not None:
            yield (*loc, "http", "url"), self.http.url
            for name, value in self.http.headers.items():
                yield (*loc, "http", "headers", name), value
            yield (*loc, "http", "body"), self.http.body
        if self.kafka is not None:
            yield (*loc, "kafka", "key"), self.kafka.key
            yield (*loc, "kafka", "value"), self.kafka.value


class ActionModel(CallModel):
    # One of http or kafka, and captures only from an HTTP response.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _HTTP,
                {**_KAFKA, "properties": {**_KAFKA["properties"], "capture": {"maxProperties": 0}}},
            ]
        }
    )

    capture: Annotated[dict[str, str], WithJsonSchema(_CAPTURES_SCHEMA)] = Field(
        default_factory=dict,
        description='Variable name to a JSONPath into the JSON response: `{"order_id": "$.id"}`.',
    )

    @field_validator("capture")
    @classmethod
    def _capture(cls, capture: dict[str, str]) -> dict[str, str]:
        bad = [name for name in capture if not NAME.fullmatch(name) or name == RUN_ID]
        if bad:
            raise ValueError(f"capture names are identifiers other than {RUN_ID}: {bad}")
        for path in capture.values():
            checked_json_path(path)
        return capture

    @model_validator(mode="after")
    def _http_captures(self) -> ActionModel:
        if self.capture and self.http is None:
            raise ValueError("capture reads an HTTP response; a Kafka publish has none")
        return self


class ExpectModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(None, ge=100, le=599, description="Unset: any 2xx.")
    json_: Annotated[
        dict[str, Any], WithJsonSchema({"type": "object", "propertyNames": {"pattern": JSON_PATH}})
    ] = Field(
        default_factory=dict,
        alias="json",
        description='JSONPath to the value found there: `{"$.status": "CANCELLED"}`.',
    )

    @field_validator("json_")
    @classmethod
    def _paths(cls, expected: dict[str, Any]) -> dict[str, Any]:
        for path in expected:
            checked_json_path(path)
        return expected


class VerifyModel(CallModel):
    model_config = ConfigDict(json_schema_extra={"anyOf": [_HTTP]})

    expect: ExpectModel = Field(default_factory=ExpectModel)

    @model_validator(mode="after")
    def _http_only(self) -> VerifyModel:
        if self.kafka is not None:
            raise ValueError("a verify request reads state back: give an http request, not kafka")
        return self

    def templates(self, *loc: str | int) -> Iterator[tuple[Where, Any]]:
        yield from super().templates(*loc)
        for path, value in self.expect.json_.items():
            yield (*loc, "expect", "json", path), value


class RetryModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, le=20)
    initial_interval_s: float = Field(1.0, gt=0, le=3600)
    backoff: float = Field(2.0, ge=1, le=10)
    max_interval_s: float = Field(30.0, gt=0, le=3600)


class StepModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    action: ActionModel
    compensation: CallModel | None = Field(None, description="Unset for a step that needs none.")
    verify: VerifyModel | None = Field(None, description="Checks, after compensation, that state is back.")
    retry: RetryModel = Field(default_factory=RetryModel)
    timeout_s: float = Field(30.0, gt=0, le=3600, description="How long one attempt of one call may take.")
    compensate_if_uncertain: bool = Field(
        False,
        description="Compensate this step too when its action failed in a way that may have taken effect "
        "(a timeout, a 5xx, a lost connection, an abort in flight); off, it is reported as uncertain.",
    )


class SagaCreate(BaseModel):
    """A saga: steps run in order; when one fails, the completed ones are compensated in reverse."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    steps: list[StepModel] = Field(min_length=1, max_length=50)

    def errors(self) -> list[FieldError]:
        """Placeholders that are not names, or name no variable the call can have; captures
        that take a name an earlier step took."""
        errors: list[FieldError] = []
        known = {RUN_ID}
        captured_by: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            loc = ("body", "steps", index)
            errors += _placeholder_errors(step.action.templates(*loc, "action"), known, "an earlier step")
            for name in step.action.capture:
                if name in captured_by:
                    errors.append(
                        FieldError(
                            (*loc, "action", "capture", name),
                            f"step {captured_by[name]} captures {name!r} already; "
                            "give each capture its own name",
                        )
                    )
                captured_by.setdefault(name, index + 1)
            known |= set(step.action.capture)
            for part in ("compensation", "verify"):
                call: CallModel | None = getattr(step, part)
                if call is not None:
                    errors += _placeholder_errors(
                        call.templates(*loc, part), known, "this step or an earlier one"
                    )
        return errors

    def check(self) -> None:
        if errors := self.errors():
            raise InvalidRequestError(errors)


def _placeholder_errors(
    templates: Iterator[tuple[Where, Any]], known: set[str], captors: str
) -> list[FieldError]:
    errors = []
    for loc, template in templates:
        for where, expression in placeholders(template, loc):
            if not NAME.fullmatch(expression):
                errors.append(
                    FieldError(where, f"{{{{{expression}}}}} is not a placeholder; write {{{{name}}}}")
                )
            elif expression not in known:
                errors.append(
                    FieldError(
                        where,
                        f"unknown placeholder {{{{{expression}}}}}: {captors} must capture it "
                        f"(known here: {', '.join(sorted(known))})",
                    )
                )
    return errors


class SagaLinks(BaseModel):
    status: str
    events: str
    stream: str
    cancel: str
    abort: str
    resolve: str
    temporal_ui: str


class SagaAccepted(BaseModel):
    run_id: str
    status: str = "RUNNING"
    links: SagaLinks
