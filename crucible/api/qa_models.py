"""Request and response models of the QA run routes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from crucible.api.field_rules import (
    HTTP_BASE_URL,
    Headers,
    HttpUrl,
    any_case,
    matches,
    published,
)
from crucible.core.qa.checks import ALL_CHECKS, SPEC_PROBLEM
from crucible.core.qa.evaluate import normalise_failure_key
from crucible.core.qa.spec import METHODS, NotASpecError, Spec, parse_document, spec_version

#: An inline spec larger than this is refused; fetch larger ones with spec_url.
MAX_INLINE_SPEC_CHARS = 10 * 1024 * 1024
_KNOWN_FAILURE_CHECKS = (*ALL_CHECKS, SPEC_PROBLEM, "request_error")
_METHOD = "(" + "|".join(any_case(m) for m in METHODS) + ")"
#: ``"METHOD /path check"``: a method in any case, a path, a check, apart by spaces or tabs.
KNOWN_FAILURE = (
    rf"^[ \t]*{_METHOD}[ \t]+/[!-~]*[ \t]+(" + "|".join(map(re.escape, _KNOWN_FAILURE_CHECKS)) + r")[ \t]*$"
)
HTTP_METHOD = rf"^{_METHOD}$"

_HTTP_METHOD = re.compile(HTTP_METHOD)


def _method(method: str) -> str:
    if not _HTTP_METHOD.fullmatch(method):
        raise ValueError(f"unknown HTTP method {method!r}; one of {[m.upper() for m in METHODS]}")
    return method


KnownFailure = Annotated[
    str,
    AfterValidator(
        matches(KNOWN_FAILURE, f'not "METHOD /path check", with a check of {sorted(_KNOWN_FAILURE_CHECKS)}')
    ),
    published(KNOWN_FAILURE),
]
MethodName = Annotated[
    str,
    AfterValidator(_method),
    published(HTTP_METHOD),
]
BaseUrl = Annotated[
    str,
    AfterValidator(
        matches(
            HTTP_BASE_URL,
            "base_url must be an absolute http(s) URL without a query or fragment, like http://127.0.0.1:8080",
        )
    ),
    published(HTTP_BASE_URL),
]


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
    return pattern


#: A regular expression; the schema says so with ``format: regex`` (Python's dialect is the one used).
Regex = Annotated[str, AfterValidator(_regex), Field(json_schema_extra={"format": "regex"})]

_PATHS = {"type": "object"}
_INFO = {"type": "object"}
#: What makes a JSON object an OpenAPI or Swagger document (``spec_version``'s rules), for inline specs.
INLINE_SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "anyOf": [
        {
            "required": ["openapi", "paths"],
            "properties": {
                "openapi": {"type": "string", "pattern": r"^3\.0\."},
                "paths": _PATHS,
                "info": _INFO,
            },
        },
        {
            "required": ["openapi"],
            "properties": {
                "openapi": {"type": "string", "pattern": r"^3\.1\."},
                "paths": {"type": ["object", "null"]},
                "info": _INFO,
            },
        },
        {
            "required": ["swagger", "paths"],
            "properties": {"swagger": {"const": "2.0"}, "paths": _PATHS, "info": _INFO},
            "not": {"required": ["openapi"]},
        },
    ],
}
_INLINE_SPEC = Draft202012Validator(INLINE_SPEC_SCHEMA)
_SPEC_GIVEN = {"spec": {"type": ["object", "string"]}}
#: Exactly one of spec_url and spec, or neither with replay_of (nulls count as not given).
_ONE_SPEC: dict[str, Any] = {
    "anyOf": [
        {"required": ["spec_url"], "properties": {"spec_url": {"type": "string"}, "spec": {"type": "null"}}},
        {"required": ["spec"], "properties": {**_SPEC_GIVEN, "spec_url": {"type": "null"}}},
        {
            "required": ["replay_of"],
            "properties": {
                "replay_of": {"type": "string"},
                "spec_url": {"type": "null"},
                "spec": {"type": "null"},
            },
        },
    ]
}


class OperationFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list, description="Operations with any of these tags.")
    paths: list[Regex] = Field(
        default_factory=list, description="Regular expressions matched against the path."
    )
    methods: list[MethodName] = Field(default_factory=list, description="HTTP methods, e.g. GET.")

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: list[str]) -> list[str]:
        return [m.upper() for m in methods]


class QaRunCreate(BaseModel):
    """A QA package run: test every operation of an OpenAPI spec against a live service."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SPEC)

    spec_url: HttpUrl | None = Field(None, description="Where to fetch the OpenAPI/Swagger document.")
    spec: (
        Annotated[dict[str, Any], WithJsonSchema(INLINE_SPEC_SCHEMA)]
        | Annotated[str, Field(max_length=MAX_INLINE_SPEC_CHARS)]
        | None
    ) = Field(None, description="The document inline: a JSON object, or JSON/YAML text.")
    base_url: BaseUrl = Field(description="The service under test, e.g. http://127.0.0.1:8080.")
    generator: Literal["schema", "llm"] = Field("schema", description="Who writes the scenarios.")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    include: OperationFilter = Field(default_factory=OperationFilter, description="Test only these.")
    exclude: OperationFilter = Field(default_factory=OperationFilter, description="Never test these.")
    headers: Headers = Field(
        default_factory=dict,
        description="Sent with every request (auth). Stored encrypted; only the names are ever shown.",
    )
    min_pass_rate: float = Field(1.0, ge=0, le=1, description="Fraction of operations that must pass.")
    request_timeout_s: float = Field(10.0, gt=0, le=600, description="Timeout of each request.")
    max_response_time_ms: float | None = Field(None, gt=0, description="Slower responses fail a check.")
    seed: int = Field(0, ge=0, description="The schema generator makes the same scenarios for a seed.")
    known_failures: list[KnownFailure] = Field(
        default_factory=list,
        description='The baseline: "METHOD /path check" entries that do not fail the verdict.',
    )
    replay_of: str | None = Field(None, description="Replay the scenarios of this earlier QA run.")
    follow_redirects: bool = Field(False, description="Follow redirects from the target.")

    @field_validator("spec")
    @classmethod
    def _spec(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
        """A document that says it is a spec. Reading it whole takes seconds for a large one, so
        :func:`unreadable_spec` does that off the event loop, once the request is valid."""
        if value is None:
            return None
        try:
            doc = parse_document(value)
            spec_version(doc)
        except NotASpecError as exc:
            raise ValueError(not_a_spec(exc)) from None
        if isinstance(value, dict) and not _INLINE_SPEC.is_valid(value):  # what its schema says
            raise ValueError(
                'not an OpenAPI or Swagger document: give "openapi" ("3.0.x" with "paths", or "3.1.x")'
                ' or "swagger" ("2.0", with "paths") as a string, and "paths" and "info" as objects'
            )
        return doc

    @field_validator("known_failures")
    @classmethod
    def _known_failures(cls, entries: list[str]) -> list[str]:
        return [normalise_failure_key(e) for e in entries]

    @model_validator(mode="after")
    def _one_spec(self) -> QaRunCreate:
        given = [name for name in ("spec_url", "spec") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError("give either spec_url or spec, not both")
        if not given and self.replay_of is None:
            raise ValueError("give the spec: spec_url, spec (inline), or replay_of an earlier run")
        return self


def not_a_spec(exc: NotASpecError) -> str:
    return "not an OpenAPI or Swagger document: " + "; ".join(f"{where}: {why}" for where, why in exc.reasons)


def unreadable_spec(doc: dict[str, Any]) -> str | None:
    """Why an inline spec cannot be read as a worker will read it, or None when it can."""
    try:
        Spec(doc)
    except NotASpecError as exc:
        return not_a_spec(exc)
    except Exception as exc:  # readable, but not as a spec: never a 500
        return f"the spec cannot be read: {type(exc).__name__}: {exc}"
    return None


class QaRunLinks(BaseModel):
    status: str
    events: str
    stream: str
    report: str
    temporal_ui: str


class QaRunAccepted(BaseModel):
    run_id: str
    status: str = "RUNNING"
    links: QaRunLinks
