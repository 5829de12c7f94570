"""Request and response models of the batch job routes."""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crucible.api.field_rules import checked_headers
from crucible.core.batch.processors import PROCESSORS, validate_options
from crucible.core.batch.records import detect_format
from crucible.core.errors import FieldError, InvalidRequestError
from crucible.core.paths import PathPolicy

Processor = Literal["anomaly-detection", "schema-validation", "http"]
assert set(PROCESSORS) == set(Processor.__args__)  # type: ignore[attr-defined]


class BatchJobCreate(BaseModel):
    """A batch job: run a processor over every record of a CSV or JSON Lines file, in chunks."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(
        min_length=1,
        max_length=4096,
        description="An absolute path the workers can read (one machine or a shared volume), "
        "or an http(s) URL they download it from.",
    )
    format: Literal["csv", "jsonl"] | None = Field(None, description="Unset: from the file's extension.")
    processor: Processor = Field(description="anomaly-detection, schema-validation or http.")
    chunk_size: int = Field(10_000, ge=1, le=1_000_000, description="Records per chunk.")
    max_chunk_retries: int = Field(3, ge=0, le=20, description="Retries of a failing chunk, with backoff.")
    on_chunk_failure: Literal["fail", "skip"] = Field(
        "fail", description="After the retries: fail the job (resumable), or record the chunk and go on."
    )
    chunk_retry_delay_s: float = Field(1.0, ge=0, le=300, description="The first retry's wait; it doubles.")
    output: str = Field(
        min_length=1, max_length=4096, description="Absolute path of the JSON Lines output, written at once."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The processor's options.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="For the http processor: sent with every request. Stored encrypted; names only shown.",
    )

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError("an input URL needs a host, like https://data.example.com/rows.csv")
            return value
        if parts.scheme and len(parts.scheme) > 1:  # not a Windows drive letter
            raise ValueError(f"unsupported input scheme {parts.scheme!r}; give a path or an http(s) URL")
        if not os.path.isabs(value):
            raise ValueError("give an absolute path (workers do not share the API's working folder)")
        return os.path.normpath(value)

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        if not os.path.isabs(value) or value.endswith(("/", os.sep)):
            raise ValueError("give the absolute path of a file")
        return os.path.normpath(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return checked_headers(headers)

    @model_validator(mode="after")
    def _consistent(self) -> BatchJobCreate:
        if self.output == self.input:
            raise ValueError("output must not be the input file")
        if self.format is None:
            try:
                detect_format(urlsplit(self.input).path or self.input)
            except ValueError:
                raise ValueError(
                    "format: cannot tell the input's format from its name; give format: csv or jsonl"
                ) from None
        if self.headers and self.processor != "http":
            raise ValueError("headers are sent by the http processor only")
        return self

    def errors(self, paths: PathPolicy, *loc: str | int) -> list[FieldError]:
        """What the model alone cannot see, as field errors under ``loc``: the processor's
        verdict on ``options``, and paths that batch jobs may not use."""
        errors = [
            FieldError((*loc, "options", *where), message)
            for where, message in validate_options(self.processor, self.options)
        ]
        files = (
            {"output": self.output}
            if urlsplit(self.input).scheme
            else {"input": self.input, "output": self.output}
        )
        for name, path in files.items():
            if (reason := paths.problem(path)) is not None:
                errors.append(FieldError((*loc, name), reason))
        return errors

    def check(self, paths: PathPolicy, *loc: str | int) -> None:
        if errors := self.errors(paths, *loc):
            raise InvalidRequestError(errors)


class BatchJobLinks(BaseModel):
    status: str
    events: str
    stream: str
    resume: str
    temporal_ui: str


class BatchJobAccepted(BaseModel):
    run_id: str
    status: str = "RUNNING"
    resumed_from: str | None = None
    links: BatchJobLinks
