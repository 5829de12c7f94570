"""Request and response models of the QA run routes."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crucible.core.qa.checks import ALL_CHECKS, SPEC_PROBLEM
from crucible.core.qa.evaluate import normalise_failure_key
from crucible.core.qa.spec import METHODS, NotASpecError, Spec, parse_document

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
#: An inline spec larger than this is refused; fetch larger ones with spec_url.
MAX_INLINE_SPEC_CHARS = 10 * 1024 * 1024
_KNOWN_FAILURE_CHECKS = {*ALL_CHECKS, SPEC_PROBLEM, "request_error"}


def _http_url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field} must be an absolute http(s) URL, like http://127.0.0.1:8080")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{field} has an invalid port") from None
    return value


def checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers a target can be sent; a wrong one is named, its value never shown (a secret)."""
    bad = [name for name in headers if not _HEADER_NAME.match(name)]
    if bad:
        raise ValueError(f"invalid header names: {bad}")
    unsendable = [name for name, value in headers.items() if not _HEADER_VALUE.fullmatch(value)]
    if unsendable:
        raise ValueError(f"header values must be printable ASCII on one line: {unsendable}")
    return headers


class OperationFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list, description="Operations with any of these tags.")
    paths: list[str] = Field(
        default_factory=list, description="Regular expressions matched against the path."
    )
    methods: list[str] = Field(default_factory=list, description="HTTP methods, e.g. GET.")

    @field_validator("paths")
    @classmethod
    def _regexes(cls, paths: list[str]) -> list[str]:
        for pattern in paths:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return paths

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m.lower() not in METHODS]
        if unknown:
            raise ValueError(f"unknown HTTP methods {unknown}; one of {[m.upper() for m in METHODS]}")
        return [m.upper() for m in methods]


class QaRunCreate(BaseModel):
    """A QA package run: test every operation of an OpenAPI spec against a live service."""

    model_config = ConfigDict(extra="forbid")

    spec_url: str | None = Field(None, description="Where to fetch the OpenAPI/Swagger document.")
    spec: dict[str, Any] | str | None = Field(
        None, description="The document inline: a JSON object, or JSON/YAML text."
    )
    base_url: str = Field(description="The service under test, e.g. http://127.0.0.1:8080.")
    generator: Literal["schema", "llm"] = Field("schema", description="Who writes the scenarios.")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    include: OperationFilter = Field(default_factory=OperationFilter, description="Test only these.")
    exclude: OperationFilter = Field(default_factory=OperationFilter, description="Never test these.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request (auth). Stored encrypted; only the names are ever shown.",
    )
    min_pass_rate: float = Field(1.0, ge=0, le=1, description="Fraction of operations that must pass.")
    request_timeout_s: float = Field(10.0, gt=0, le=600, description="Timeout of each request.")
    max_response_time_ms: float | None = Field(None, gt=0, description="Slower responses fail a check.")
    seed: int = Field(0, ge=0, description="The schema generator makes the same scenarios for a seed.")
    known_failures: list[str] = Field(
        default_factory=list,
        description='The baseline: "METHOD /path check" entries that do not fail the verdict.',
    )
    replay_of: str | None = Field(None, description="Replay the scenarios of this earlier QA run.")
    follow_redirects: bool = Field(False, description="Follow redirects from the target.")

    @field_validator("spec_url")
    @classmethod
    def _spec_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "spec_url")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = _http_url(value, "base_url")
        if urlsplit(value).query or urlsplit(value).fragment:
            raise ValueError("base_url takes no query or fragment; operations' paths are added to it")
        return value

    @field_validator("spec")
    @classmethod
    def _spec(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if isinstance(value, str) and len(value) > MAX_INLINE_SPEC_CHARS:
            raise ValueError(f"longer than {MAX_INLINE_SPEC_CHARS:,} characters; give a spec_url instead")
        try:
            doc = parse_document(value)
            Spec(doc)
        except NotASpecError as exc:
            raise ValueError(
                "not an OpenAPI or Swagger document: "
                + "; ".join(f"{where}: {why}" for where, why in exc.reasons)
            ) from None
        except Exception as exc:  # readable, but not as a spec: never a 500
            raise ValueError(f"the spec cannot be read: {type(exc).__name__}: {exc}") from None
        return doc

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return checked_headers(headers)

    @field_validator("known_failures")
    @classmethod
    def _known_failures(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parts = entry.split()
            if len(parts) != 3 or parts[0].lower() not in METHODS or not parts[1].startswith("/"):
                raise ValueError(f'{entry!r} is not "METHOD /path check"')
            if parts[2] not in _KNOWN_FAILURE_CHECKS:
                raise ValueError(
                    f"{entry!r}: unknown check {parts[2]!r}; one of {sorted(_KNOWN_FAILURE_CHECKS)}"
                )
        return [normalise_failure_key(e) for e in entries]

    @model_validator(mode="after")
    def _one_spec(self) -> QaRunCreate:
        given = [name for name in ("spec_url", "spec") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError("give either spec_url or spec, not both")
        if not given and self.replay_of is None:
            raise ValueError("give the spec: spec_url, spec (inline), or replay_of an earlier run")
        return self


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
