"""QA activities that talk HTTP: fetching a spec, and executing scenarios against a target.

One pooled ``httpx.AsyncClient`` (on the aiohttp transport) serves every scenario of
every run on this worker. An activity executes all scenarios of a batch of operations,
so neither Temporal's per-activity cost nor a client per request decides the speed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import heartbeating
from crucible.core.qa.checks import REQUEST_ERROR, SPEC_PROBLEM, CheckFailure, Response, check_response
from crucible.core.qa.models import (
    ExecuteOperationsInput,
    ExecuteOperationsResult,
    FetchSpecInput,
    FetchSpecResult,
    OperationOutcome,
)
from crucible.core.qa.scenarios import Scenario, schema_scenarios
from crucible.core.qa.spec import NotASpecError, Operation, Spec, SpecProblem, parse_document
from crucible.core.qa.store import QaStore, StoredResult
from crucible.core.secrets import SecretStore

#: A spec larger than this is refused: it would not fit the database row sensibly.
MAX_SPEC_BYTES = 20 * 1024 * 1024
#: Bytes of each response body kept for the checks; the rest is read and dropped.
MAX_RESPONSE_BYTES = 1024 * 1024
#: Bytes of each response body stored with its result, for people reading a report.
BODY_EXCERPT_BYTES = 2048
SPEC_INVALID = "SpecInvalid"


def operation_summary(op: Operation) -> dict[str, Any]:
    return {
        "key": op.key,
        "method": op.method.upper(),
        "path": op.path,
        "operation_id": op.operation_id,
        "tags": op.tags,
        "responses": sorted(op.responses),
        "problems": op.problems,
    }


class QaHttpActivities:
    def __init__(self, store: QaStore, secrets: SecretStore, client: httpx.AsyncClient) -> None:
        self.store = store
        self.secrets = secrets
        self.client = client

    @activity.defn
    async def fetch_spec(self, request: FetchSpecInput) -> FetchSpecResult:
        """Fetch (or read the inline) spec, parse its operations, store both.

        A spec that cannot be fetched after the retries, or is not a spec, raises a
        non-retryable ``SpecInvalid`` error that says why.
        """
        row = await self.store.get(request.run_id)
        if row is None:
            raise ApplicationError(f"QA run {request.run_id} has no stored request", non_retryable=True)
        if request.spec_url:
            doc = parse_or_raise(await self._download(request.spec_url))
        elif row.spec is not None:
            doc = row.spec
        else:
            raise ApplicationError(
                "the run has neither a spec_url nor a spec", type=SPEC_INVALID, non_retryable=True
            )
        try:
            spec = Spec(doc)
        except NotASpecError as exc:
            raise ApplicationError(str(exc), type=SPEC_INVALID, non_retryable=True) from None
        operations = [op for op in spec.operations if request.filters.admits(op)]
        await self.store.save_spec(
            request.run_id,
            spec=doc,
            version=spec.version,
            operations=[operation_summary(op) for op in operations],
        )
        replayed = (
            await self.store.copy_scenarios(request.replay_of, request.run_id) if request.replay_of else 0
        )
        return FetchSpecResult(
            version=spec.version,
            title=str((doc.get("info") or {}).get("title") or ""),
            operations=[op.key for op in operations],
            problems=sum(1 for op in operations if op.problems),
            replayed_scenarios=replayed,
        )

    async def _download(self, url: str) -> bytes:
        try:
            async with self.client.stream("GET", url, timeout=30.0, follow_redirects=True) as response:
                if response.status_code >= 400:
                    failure = f"fetching {url} answered {response.status_code}"
                    # A 5xx may pass; a 4xx will not, so do not retry it.
                    raise ApplicationError(
                        failure, type=SPEC_INVALID, non_retryable=response.status_code < 500
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_SPEC_BYTES:
                        raise ApplicationError(
                            f"the spec at {url} is larger than {MAX_SPEC_BYTES} bytes",
                            type=SPEC_INVALID,
                            non_retryable=True,
                        )
                return bytes(body)
        except httpx.HTTPError as exc:
            raise ApplicationError(f"fetching {url} failed: {exc!r}", type=SPEC_INVALID) from None

    @activity.defn
    async def execute_operations(self, request: ExecuteOperationsInput) -> ExecuteOperationsResult:
        """Run every scenario of the given operations, at most ``concurrency`` requests at once.

        Each operation's results are stored as soon as it finishes, so a cancelled run
        keeps them; a retried batch (after a worker crash) overwrites the same rows.
        """
        row = await self.store.get(request.run_id)
        if row is None or row.spec is None:
            raise ApplicationError(f"QA run {request.run_id} has no stored spec", non_retryable=True)
        spec = Spec(row.spec)
        by_key = {op.key: op for op in spec.operations}
        headers = await self.secrets.get(request.headers_secret) if request.headers_secret else {}
        stored = await self.store.results(request.run_id, operations=request.operations)
        ready: dict[str, list[Scenario]] = {}
        for result in stored:
            ready.setdefault(result.operation, []).append(Scenario.from_dict(result.scenario))
        limit = asyncio.Semaphore(max(1, request.concurrency))
        target = Target(self.client, spec, request, headers, limit)
        with heartbeating():
            outcomes = await asyncio.gather(
                *(
                    self._operation(target, by_key[key], ready.get(key), request)
                    for key in request.operations
                    if key in by_key
                )
            )
        return ExecuteOperationsResult(outcomes=list(outcomes))

    async def _operation(
        self,
        target: Target,
        op: Operation,
        scenarios: list[Scenario] | None,
        request: ExecuteOperationsInput,
    ) -> OperationOutcome:
        # An operation whose part of the spec is broken is still tested as far as it can be;
        # the evaluation adds its spec problems to whatever the scenarios find.
        source = scenarios[0].source if scenarios else "schema"
        if not scenarios:
            try:
                scenarios = schema_scenarios(target.spec, op, seed=request.seed)
            except SpecProblem as exc:
                # A part of the spec only generation trips over (a bad pattern): the operation's result.
                if str(exc) not in op.problems:
                    await self.store.save_results(request.run_id, op.key, [_problem_row(op, str(exc))])
                return OperationOutcome(op.key, 0, passed=False, failed_checks=[SPEC_PROBLEM])
        results = await asyncio.gather(*(target.run(op, scenario) for scenario in scenarios))
        rows = [
            StoredResult(op.key, idx, scenario.to_dict(), result, not result["failures"])
            for idx, (scenario, result) in enumerate(zip(scenarios, results, strict=True))
        ]
        await self.store.save_results(request.run_id, op.key, rows)
        failed = sorted({f["check"] for result in results for f in result["failures"]} | spec_checks(op))
        statuses = sorted({r["status"] for r in results if r["status"] is not None})
        return OperationOutcome(op.key, len(scenarios), not failed, failed, statuses, source)


def spec_checks(op: Operation) -> set[str]:
    return {SPEC_PROBLEM} if op.problems else set()


class Target:
    """Sends scenarios to the target under test and checks what comes back."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        spec: Spec,
        request: ExecuteOperationsInput,
        headers: dict[str, str],
        limit: asyncio.Semaphore,
    ) -> None:
        self.client = client
        self.spec = spec
        self.request = request
        self.headers = headers
        self.limit = limit
        base = request.base_url.rstrip("/")
        self.base = base if urlsplit(base).path not in ("", "/") else base + spec.base_path

    async def run(self, op: Operation, scenario: Scenario) -> dict[str, Any]:
        async with self.limit:
            try:
                response = await self._send(op, scenario)
            except httpx.TimeoutException:
                failure = CheckFailure(
                    REQUEST_ERROR,
                    f"no response within {self.request.request_timeout_s:g} s",
                    "a response",
                    "timeout",
                )
                return {
                    "status": None,
                    "elapsed_ms": None,
                    "content_type": None,
                    "failures": [failure.to_dict()],
                }
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                failure = CheckFailure(
                    REQUEST_ERROR, f"the request failed: {exc!r}", "a response", type(exc).__name__
                )
                return {
                    "status": None,
                    "elapsed_ms": None,
                    "content_type": None,
                    "failures": [failure.to_dict()],
                }
        failures = check_response(
            self.spec, op, scenario, response, max_response_time_ms=self.request.max_response_time_ms
        )
        return {
            "status": response.status,
            "elapsed_ms": round(response.elapsed_ms, 2),
            "content_type": response.content_type,
            "body_excerpt": _excerpt(response),
            "truncated": response.truncated,
            "failures": [f.to_dict() for f in failures],
        }

    async def _send(self, op: Operation, scenario: Scenario) -> Response:
        path = op.path
        for name, value in scenario.path_params.items():
            path = path.replace("{" + name + "}", quote(_text(value), safe=""))
        headers = {name: _text(value) for name, value in scenario.headers.items()}
        headers.update(self.headers)  # the user's own headers (auth) win
        kwargs: dict[str, Any] = {}
        if scenario.has_body:
            media = (scenario.media_type or "application/json").split(";")[0].strip().lower()
            if media == "application/json" or media.endswith("+json"):
                kwargs["json"] = scenario.body
            elif media == "application/x-www-form-urlencoded" and isinstance(scenario.body, dict):
                kwargs["data"] = {k: _text(v) for k, v in scenario.body.items()}
            elif media == "multipart/form-data" and isinstance(scenario.body, dict):
                kwargs["files"] = {k: (None, _text(v).encode()) for k, v in scenario.body.items()}
            else:
                kwargs["content"] = _text(scenario.body).encode()
                headers.setdefault("content-type", media)
        built = self.client.build_request(
            op.method.upper(),
            self.base + path,
            params=[(k, _text(v)) for k, values in scenario.query.items() for v in _many(values)],
            headers=headers,
            cookies={k: _text(v) for k, v in scenario.cookies.items()},
            timeout=self.request.request_timeout_s,
            **kwargs,
        )
        started = time.perf_counter()
        response = await self.client.send(built, stream=True, follow_redirects=self.request.follow_redirects)
        try:
            body = bytearray()
            truncated = False
            async with asyncio.timeout(self.request.request_timeout_s):
                async for chunk in response.aiter_raw():
                    if len(body) + len(chunk) > MAX_RESPONSE_BYTES:
                        body += chunk[: MAX_RESPONSE_BYTES - len(body)]
                        truncated = True
                        break
                    body += chunk
        except TimeoutError:
            truncated = True  # a stream that never ends: check what arrived in time
        finally:
            await response.aclose()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Response(
            status=response.status_code,
            content_type=response.headers.get("content-type"),
            body=_decoded(bytes(body), response.headers.get("content-encoding"))
            if not truncated
            else bytes(body),
            elapsed_ms=elapsed_ms,
            truncated=truncated,
        )


def _problem_row(op: Operation, problem: str) -> StoredResult:
    failure = CheckFailure(SPEC_PROBLEM, problem)
    return StoredResult(
        op.key,
        0,
        {"name": "spec problem", "expect": "accept"},
        {"status": None, "elapsed_ms": None, "content_type": None, "failures": [failure.to_dict()]},
        False,
    )


def _excerpt(response: Response) -> str:
    """The start of a textual body, for people reading a report; binary bodies by their size."""
    media = (response.content_type or "").split(";")[0].strip().lower()
    textual = media.startswith("text/") or "json" in media or "xml" in media or "yaml" in media
    if not textual and b"\x00" in response.body[:BODY_EXCERPT_BYTES]:
        return f"<{len(response.body)} bytes of {media or 'binary data'}>"
    return response.body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


def parse_or_raise(raw: bytes) -> dict[str, Any]:
    try:
        return parse_document(raw)
    except NotASpecError as exc:
        raise ApplicationError(str(exc), type=SPEC_INVALID, non_retryable=True) from None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _many(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """Bodies are read raw (so the size cap counts wire bytes); undo gzip/deflate for the checks."""
    if not encoding or not body:
        return body
    import zlib

    try:
        if encoding.lower() == "gzip":
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding.lower() == "deflate":
            return zlib.decompress(body)
    except zlib.error:
        return body
    return body
