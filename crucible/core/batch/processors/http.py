"""``http``: one request per record, from a template, a bounded number at a time.

Every request carries ``Idempotency-Key: <job id>-<row>``. A chunk redone after a crash
sends its requests again with the same keys, so a target that honours the header does
not repeat their side effects. A request that fails (a transport error, a timeout, an
unexpected status) is a failed record in the output, never an exception.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crucible.core.batch.processors.base import (
    ChunkContext,
    ChunkOutput,
    InvalidOptionsError,
    OptionError,
    add_counts,
    option_error,
    option_errors,
    parse_options,
)
from crucible.core.batch.processors.templates import (
    MissingFieldError,
    Text,
    compile_json,
    compile_text,
    json_placeholder_errors,
    placeholder_errors,
    render_json,
)
from crucible.core.batch.records import Chunk
from crucible.core.http import IDEMPOTENCY_HEADER, REQUEST_ERRORS

NAME = "http"
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 10.0
_MAX_ERROR_CHARS = 200


class HttpOptions(BaseModel):
    """Options of ``http``. Header values are not among them: they may be secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "POST"
    url: str = Field(
        description="http(s); {{record.<field>}} and {{row}} placeholders in its path and query."
    )
    body: Any = Field(None, description="A JSON template; unset: no body.")
    concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1, le=256, description="Requests in flight per chunk.")
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=300, allow_inf_nan=False)
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        None, min_length=1, description="Statuses that count as success; unset: any 2xx."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, method: Any) -> Any:
        return method.upper() if isinstance(method, str) else method

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise option_error(
                "http_url", "give an http or https URL, like https://api.example.com/items/{{record.id}}"
            )
        if "{{" in parts.netloc:
            raise option_error("http_url", "write the URL's host out; placeholders go in its path and query")
        for message in placeholder_errors(url):
            raise option_error("placeholder", message)
        return url


def validate(options: Any) -> list[OptionError]:
    """What is wrong with ``http`` options, placeholders inside the body included."""
    errors = option_errors(HttpOptions, options)
    if not errors:
        errors = json_placeholder_errors(options.get("body"), ("body",))
    return errors


class HttpProcessor:
    """Outputs ``{"row", "id", "status", "ok", "elapsed_ms", "error"}`` for every record."""

    name = NAME
    needs_profile = False

    def __init__(
        self, options: dict[str, Any], *, client: httpx.AsyncClient, headers: dict[str, str] | None
    ) -> None:
        """``client`` is the worker's shared one; ``headers`` are resolved values, secrets maybe."""
        self.options = parse_options(NAME, HttpOptions, options)
        body_errors = json_placeholder_errors(self.options.body, ("body",))
        if body_errors:
            raise InvalidOptionsError(NAME, body_errors)
        self.client = client
        self.url = compile_text(self.options.url)
        self.body = None if self.options.body is None else compile_json(self.options.body)
        # The job's key replaces any the caller gives, whatever its case.
        self.headers = {k: v for k, v in (headers or {}).items() if k.lower() != IDEMPOTENCY_HEADER.lower()}
        if self.body is not None and not any(k.lower() == "content-type" for k in self.headers):
            self.headers["Content-Type"] = "application/json"
        self.expected = frozenset(self.options.expect_status or range(200, 300))

    def profile(self, records: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        return {}

    async def process(self, chunk: Chunk, profile: dict[str, Any], context: ChunkContext) -> ChunkOutput:
        """One request per record, at most ``concurrency`` in flight; results in row order."""
        results: list[dict[str, Any]] = [{} for _ in chunk.records]
        pending = enumerate(chunk.records)

        async def work() -> None:
            for i, record in pending:  # shared: each worker takes the next record
                results[i] = await self._call(chunk.first_row + i, record, context.job_id)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.options.concurrency, len(chunk.records))):
                group.create_task(work())
        statuses: dict[str, int] = {}
        for result in results:
            key = "error" if result["status"] is None else str(result["status"])
            statuses[key] = statuses.get(key, 0) + 1
        ok = sum(result["ok"] for result in results)
        aggregates = {"records": len(results), "ok": ok, "failed": len(results) - ok, "statuses": statuses}
        return ChunkOutput(results, aggregates)

    async def _call(self, row: int, record: dict[str, Any], job_id: str) -> dict[str, Any]:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            url = self.url.render(row, record, quote=_quote) if isinstance(self.url, Text) else self.url
            body = None if self.body is None else json.dumps(render_json(self.body, row, record)).encode()
        except MissingFieldError as exc:
            error = f"the record has no field {exc.field!r}"
        else:
            try:
                status = await self._send(url, body, row, job_id)
            except TimeoutError:
                error = f"no answer within {self.options.timeout_s:g} s"
            except REQUEST_ERRORS as exc:
                error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[
                    :_MAX_ERROR_CHARS
                ]
            else:
                if status not in self.expected:
                    error = f"unexpected status {status}"
        return {
            "row": row,
            "id": record.get("id"),
            "status": status,
            "ok": error is None,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            "error": error,
        }

    async def _send(self, url: str, body: bytes | None, row: int, job_id: str) -> int:
        headers = {**self.headers, IDEMPOTENCY_HEADER: f"{job_id}-{row}"}
        # This deadline bounds the whole request, waiting for a connection included. httpx's
        # own timeouts, which bound each wait, only back it up: a client's default may be shorter.
        async with asyncio.timeout(self.options.timeout_s):
            response = await self.client.request(
                self.options.method, url, content=body, headers=headers, timeout=self.options.timeout_s + 1
            )
        return response.status_code

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return add_counts(a, b)

    def summary(self, aggregates: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        empty: dict[str, Any] = {"records": 0, "ok": 0, "failed": 0, "statuses": {}}
        return add_counts(empty, aggregates)


def _quote(text: str) -> str:
    return quote(text, safe="")
