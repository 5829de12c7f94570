"""Request and response models of the batch job routes."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from crucible.api.field_rules import (
    HTTP_METHOD_ANY_CASE,
    PATH_QUERY,
    REQUEST_URL,
    SCHEME,
    URL_START,
    Headers,
    any_case,
    matches,
    published,
)
from crucible.core.batch.processors import PROCESSORS, validate_options
from crucible.core.batch.processors.anomaly import AnomalyOptions
from crucible.core.batch.processors.http import HttpOptions
from crucible.core.batch.processors.schema import SchemaOptions
from crucible.core.batch.records import EXTENSIONS
from crucible.core.errors import FieldError, ForbiddenError, InvalidRequestError
from crucible.core.paths import PathPolicy

Processor = Literal["anomaly-detection", "schema-validation", "http"]
assert set(PROCESSORS) == set(Processor.__args__)  # type: ignore[attr-defined]

#: An input: an absolute path, or an http(s) URL (a fragment allowed).
INPUT = rf"^(/[^\x00]*|{URL_START}{PATH_QUERY}(#[\x21-\x7e]*)?)$"
#: An output: the absolute path of a file.
OUTPUT = r"^/[^\x00]*[^/\x00]$"
_EXTENSION = r"\.(" + "|".join(any_case(e.lstrip(".")) for e in EXTENSIONS) + ")"
_NAME = r"[^/?#\x00]*[^/.?#\x00][^/?#\x00]*"
#: An input whose name says its format (``detect_format``): a file name with a known extension
#: last in its path, before any query; the workers read it off ``input.split("?")[0]``.
NAMED_INPUT = rf"^({SCHEME}[^/?#]*)?(/[^?#]*)?/{_NAME}{_EXTENSION}(\?[^#]*)?$"
_NAMED_INPUT = re.compile(NAMED_INPUT)


def _input(value: str) -> str:
    if re.fullmatch(INPUT, value):
        return os.path.normpath(value) if value.startswith("/") else value
    scheme = urlsplit(value).scheme
    if scheme in ("http", "https"):
        raise ValueError(
            "an input URL needs a host and printable ASCII, like https://data.example.com/rows.csv"
        )
    if scheme and len(scheme) > 1:  # not a Windows drive letter
        raise ValueError(f"unsupported input scheme {scheme!r}; give a path or an http(s) URL")
    raise ValueError("give an absolute path (workers do not share the API's working folder)")


InputLocation = Annotated[str, AfterValidator(_input), published(INPUT)]
OutputPath = Annotated[
    str,
    AfterValidator(
        lambda value: os.path.normpath(matches(OUTPUT, "give the absolute path of a file")(value))
    ),
    published(OUTPUT),
]


def _options_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


_HTTP_OPTIONS = _options_schema(HttpOptions)
_HTTP_OPTIONS["properties"]["url"]["pattern"] = REQUEST_URL
_HTTP_OPTIONS["properties"]["method"] = {"type": "string", "pattern": HTTP_METHOD_ANY_CASE, "default": "POST"}
_NO_HEADERS = {"headers": {"maxProperties": 0}}
#: Each processor's options, and headers for the http processor only (``errors`` checks them).
_PER_PROCESSOR: dict[str, Any] = {
    "anyOf": [
        {
            "properties": {
                "processor": {"const": "anomaly-detection"},
                "options": _options_schema(AnomalyOptions),
                **_NO_HEADERS,
            }
        },
        {
            "required": ["options"],
            "properties": {
                "processor": {"const": "schema-validation"},
                "options": _options_schema(SchemaOptions),
                **_NO_HEADERS,
            },
        },
        {"required": ["options"], "properties": {"processor": {"const": "http"}, "options": _HTTP_OPTIONS}},
    ]
}
#: A format, or an input whose name says it.
_FORMAT_KNOWN: dict[str, Any] = {
    "anyOf": [
        {"required": ["format"], "properties": {"format": {"type": "string"}}},
        {"properties": {"input": {"pattern": NAMED_INPUT}}},
    ]
}


class BatchJobCreate(BaseModel):
    """A batch job: run a processor over every record of a CSV or JSON Lines file, in chunks."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [_PER_PROCESSOR, _FORMAT_KNOWN]})

    input: InputLocation = Field(
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
    output: OutputPath = Field(
        min_length=1, max_length=4096, description="Absolute path of the JSON Lines output, written at once."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The processor's options.")
    headers: Headers = Field(
        default_factory=dict,
        description="For the http processor: sent with every request. Stored encrypted; names only shown.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BatchJobCreate:
        if self.output == self.input:
            raise ValueError("output must not be the input file")
        if self.format is None and not _NAMED_INPUT.fullmatch(self.input):
            raise ValueError(
                "format: cannot tell the input's format from its name; give format: csv or jsonl"
            )
        if self.headers and self.processor != "http":
            raise ValueError("headers are sent by the http processor only")
        return self

    def errors(self, *loc: str | int) -> list[FieldError]:
        """The processor's verdict on ``options``, as field errors under ``loc``."""
        errors = [
            FieldError((*loc, "options", *where), message)
            for where, message in validate_options(self.processor, self.options)
        ]
        url = str(self.options.get("url"))
        if self.processor == "http" and not errors and not re.fullmatch(REQUEST_URL, url):
            errors.append(
                FieldError(
                    (*loc, "options", "url"),
                    "give an http(s) URL of printable ASCII with a host written out and no credentials",
                )
            )
        return errors

    def path_problems(self, paths: PathPolicy) -> list[str]:
        """Why batch jobs may not use its input or output path, if they may not."""
        files = (
            {"output": self.output}
            if not self.input.startswith("/")
            else {"input": self.input, "output": self.output}
        )
        return [
            f"{name}: {reason}" for name, path in files.items() if (reason := paths.problem(path)) is not None
        ]

    def check(self, paths: PathPolicy, *loc: str | int) -> None:
        """422 for options the processor refuses; then 403 for paths batch jobs may not use."""
        if errors := self.errors(*loc):
            raise InvalidRequestError(errors)
        if problems := self.path_problems(paths):
            raise ForbiddenError("; ".join(problems))


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
