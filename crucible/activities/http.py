"""QA activities that talk HTTP: fetching a spec, and executing scenarios against a target.

One pooled ``httpx.AsyncClient`` (on the aiohttp transport) serves every scenario of
every run on this worker. An activity executes all scenarios of a batch of operations,
so neither Temporal's per-activity cost nor a client per request decides the speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import heartbeating
from crucible.activities.target import Target
from crucible.core.qa.checks import SPEC_PROBLEM, CheckFailure
from crucible.core.qa.models import (
    ExecuteOperationsInput,
    ExecuteOperationsResult,
    FetchSpecInput,
    FetchSpecResult,
    OperationOutcome,
)
from crucible.core.qa.scenarios import Scenario, schema_scenarios
from crucible.core.qa.spec import NotASpecError, Operation, Spec, SpecProblem, parse_document
from crucible.core.qa.store import PROBLEM_ROW, QaStore, StoredResult
from crucible.core.secrets import SecretStore
from crucible.core.targets import TargetClient, TargetRefused

#: A spec larger than this is refused: it would not fit the database row sensibly.
MAX_SPEC_BYTES = 20 * 1024 * 1024
#: How often a batch stores the results of the operations it has finished.
RESULT_FLUSH_S = 0.25
#: Parsed specs kept per worker, by run and by content, the least recent dropped first.
SPEC_CACHE_SIZE = 4
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
    def __init__(self, store: QaStore, secrets: SecretStore, client: TargetClient) -> None:
        self.store = store
        self.secrets = secrets
        self.client = client
        self._specs: dict[str, asyncio.Future[Spec]] = {}
        #: Runs of the same document (a CI job's, a schedule's) share its parse.
        self._by_content: dict[str, Spec] = {}

    @activity.defn
    async def fetch_spec(self, request: FetchSpecInput) -> FetchSpecResult:
        """Fetch (or read the inline) spec, parse its operations, store both.

        A spec that cannot be fetched after the retries, or is not a spec, raises a
        non-retryable ``SpecInvalid`` error that says why.
        """
        row = await self.store.get(request.run_id)
        if row is None and request.template is not None:  # a scheduled run makes its own row
            await self.store.copy_request(request.template, request.run_id)
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
            spec = await self._parsed(doc)
        except NotASpecError as exc:
            raise ApplicationError(str(exc), type=SPEC_INVALID, non_retryable=True) from None
        except Exception as exc:  # readable, but not as a spec
            message = f"the spec cannot be read: {type(exc).__name__}: {exc}"
            raise ApplicationError(message, type=SPEC_INVALID, non_retryable=True) from None
        self._remember(request.run_id, spec)  # the run's first batches usually land on this worker
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
        except TargetRefused as exc:  # the same request would be refused again
            raise ApplicationError(
                f"fetching the spec: {exc.summary}", type=SPEC_INVALID, non_retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ApplicationError(f"fetching {url} failed: {exc!r}", type=SPEC_INVALID) from None

    async def _spec(self, run_id: str) -> Spec:
        """The run's parsed spec: parsed once per worker and run, however many batches ask at once."""
        if run_id not in self._specs:
            self._specs[run_id] = asyncio.ensure_future(self._parse(run_id))
            while len(self._specs) > SPEC_CACHE_SIZE:
                self._specs.pop(next(iter(self._specs)))
        try:
            return await asyncio.shield(self._specs[run_id])
        except Exception:
            self._specs.pop(run_id, None)  # the next batch tries again
            raise

    async def _parsed(self, doc: dict[str, Any]) -> Spec:
        """``doc`` parsed, or the parse of the same document an earlier run made on this worker."""
        key = await asyncio.to_thread(_digest, doc)
        spec = self._by_content.pop(key, None)
        if spec is None:
            spec = await asyncio.to_thread(Spec, doc)
        self._by_content[key] = spec
        while len(self._by_content) > SPEC_CACHE_SIZE:
            self._by_content.pop(next(iter(self._by_content)))
        return spec

    def _remember(self, run_id: str, spec: Spec) -> None:
        parsed: asyncio.Future[Spec] = asyncio.get_running_loop().create_future()
        parsed.set_result(spec)
        self._specs[run_id] = parsed
        while len(self._specs) > SPEC_CACHE_SIZE:
            self._specs.pop(next(iter(self._specs)))

    async def _parse(self, run_id: str) -> Spec:
        row = await self.store.get(run_id)
        if row is None or row.spec is None:
            raise ApplicationError(f"QA run {run_id} has no stored spec", non_retryable=True)
        return await self._parsed(row.spec)

    @activity.defn
    async def execute_operations(self, request: ExecuteOperationsInput) -> ExecuteOperationsResult:
        """Run every scenario of the given operations, at most ``concurrency`` requests at once.

        Each operation's results are stored as soon as it finishes, so a cancelled run
        keeps them; a retried batch (after a worker crash) overwrites the same rows.
        """
        with heartbeating():
            spec = await self._spec(request.run_id)
            by_key = {op.key: op for op in spec.operations}
            headers = await self.secrets.get(request.headers_secret) if request.headers_secret else {}
            ready: dict[str, list[Scenario]] = {}
            for stored in await self.store.results(
                request.run_id, operations=request.operations, excerpts=False
            ):
                if not stored.scenario.get(PROBLEM_ROW):
                    ready.setdefault(stored.operation, []).append(Scenario.from_dict(stored.scenario))
            target = Target(self.client, spec, request, headers)
            async with ResultWriter(self.store, request.run_id) as writer:
                batch = [
                    _Operation.of(spec, by_key[key], ready.get(key), request.seed, writer)
                    for key in request.operations
                    if key in by_key
                ]
                await _send_all(target, batch, request.concurrency)
        return ExecuteOperationsResult(outcomes=[operation.outcome() for operation in batch])


async def _send_all(target: Target, batch: list[_Operation], concurrency: int) -> None:
    """Every scenario of the batch, in order, with at most ``concurrency`` requests in flight:
    that many senders, each taking the next scenario when its request is done."""
    work = ((operation, idx) for operation in batch for idx in range(len(operation.scenarios)))

    async def sender() -> None:
        for operation, idx in work:
            operation.done(idx, await target.run(operation.op, operation.scenarios[idx]))

    async with asyncio.TaskGroup() as senders:
        for _ in range(max(1, concurrency)):
            senders.create_task(sender())


class _Operation:
    """One operation of a batch: its scenarios, then their results, stored once all are in."""

    def __init__(self, op: Operation, scenarios: list[Scenario], source: str, writer: ResultWriter) -> None:
        self.op = op
        self.scenarios = scenarios
        self.source = source
        self.writer = writer
        self.results: list[dict[str, Any]] = [{}] * len(scenarios)
        self.left = len(scenarios)
        self.failed: set[str] = spec_checks(op)

    @classmethod
    def of(
        cls, spec: Spec, op: Operation, scenarios: list[Scenario] | None, seed: int, writer: ResultWriter
    ) -> _Operation:
        """The operation with the scenarios stored for it (a replay, a retried batch), else new ones.

        An operation whose part of the spec is broken is still tested as far as it can be;
        the evaluation adds its spec problems to whatever the scenarios find.
        """
        if scenarios:
            return cls(op, scenarios, scenarios[0].source, writer)
        try:
            return cls(op, schema_scenarios(spec, op, seed=seed), "schema", writer)
        except SpecProblem as exc:
            # A part of the spec only generation trips over (a bad pattern): the operation's result.
            writer.add([_problem_row(op, str(exc))])
            problem = cls(op, [], "schema", writer)
            problem.failed.add(SPEC_PROBLEM)
            return problem

    def done(self, idx: int, result: dict[str, Any]) -> None:
        self.results[idx] = result
        self.failed.update(f["check"] for f in result["failures"])
        self.left -= 1
        if not self.left:
            self.writer.add(
                [
                    StoredResult(self.op.key, i, scenario.to_dict(), found, not found["failures"])
                    for i, (scenario, found) in enumerate(zip(self.scenarios, self.results, strict=True))
                ]
            )

    def outcome(self) -> OperationOutcome:
        statuses = sorted({r["status"] for r in self.results if r["status"] is not None})
        failed = sorted(self.failed)
        return OperationOutcome(self.op.key, len(self.scenarios), not failed, failed, statuses, self.source)


class ResultWriter:
    """Stores finished operations' results in a few statements, not one per operation.

    Rows are written every ``RESULT_FLUSH_S`` and when the block ends, also when it ends
    by cancellation: a cancelled run keeps what it found.
    """

    def __init__(self, store: QaStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._rows: list[StoredResult] = []
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, rows: list[StoredResult]) -> None:
        self._rows.extend(rows)

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            await self.store.save_results(self.run_id, rows)

    async def _every(self) -> None:
        # Never cancelled: a write cut short would lose the rows it had taken.
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RESULT_FLUSH_S)
            await self.flush()
        await self.flush()  # rows added while the last round was writing

    async def __aenter__(self) -> ResultWriter:
        self._task = asyncio.create_task(self._every())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._stopping.set()
        await asyncio.shield(self._task)  # its last round writes whatever is left


def spec_checks(op: Operation) -> set[str]:
    return {SPEC_PROBLEM} if op.problems else set()


def _problem_row(op: Operation, problem: str) -> StoredResult:
    """A result row that holds a spec problem, not a scenario: it is never sent or replayed."""
    failure = CheckFailure(SPEC_PROBLEM, problem)
    return StoredResult(
        op.key,
        0,
        {"name": "spec problem", "expect": "accept", PROBLEM_ROW: True},
        {"status": None, "elapsed_ms": None, "content_type": None, "failures": [failure.to_dict()]},
        False,
    )


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_or_raise(raw: bytes) -> dict[str, Any]:
    try:
        return parse_document(raw)
    except NotASpecError as exc:
        raise ApplicationError(str(exc), type=SPEC_INVALID, non_retryable=True) from None
