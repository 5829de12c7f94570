"""QA runs' requests, specs, scenarios, results and evaluations in PostgreSQL.

Every write is an upsert on its natural key, so a retried activity (a worker killed
mid-run) rewrites the same rows instead of adding new ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Delete, Table, Text, case, exists, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crucible.core.tables import QaResultRow, QaRunRow, Run, SecretRow

RUNS: Table = QaRunRow.__table__  # type: ignore[attr-defined]
RESULTS: Table = QaResultRow.__table__  # type: ignore[attr-defined]
SECRETS: Table = SecretRow.__table__  # type: ignore[attr-defined]
#: The secret that holds a request's header values, by its id in the request row.
HEADERS_SECRET = RUNS.c.request["headers_secret"].astext
#: Marks a stored row that records a spec problem instead of a scenario: never sent or replayed.
PROBLEM_ROW = "spec_problem"
_UPSERT_RESULTS = text(
    """
    INSERT INTO qa_results (run_id, operation, idx, scenario, result, passed)
    SELECT :run_id, r.operation, r.idx, r.scenario, r.result, r.passed
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS r(operation text, idx integer, scenario jsonb, result jsonb, passed boolean)
    ON CONFLICT (run_id, operation, idx) DO UPDATE
    SET scenario = excluded.scenario, result = excluded.result, passed = excluded.passed
    """
)
_OPERATION_RESULTS = text(
    """
    SELECT r.operation,
        count(DISTINCT r.idx) AS scenarios,
        array_remove(array_agg(DISTINCT (r.result->>'status')::integer), NULL) AS statuses,
        coalesce(
            jsonb_agg(f.failure || jsonb_build_object('scenario', r.scenario->'name') ORDER BY r.idx, f.n)
                FILTER (WHERE f.failure IS NOT NULL),
            '[]'::jsonb
        ) AS failures
    FROM qa_results AS r
    LEFT JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(r.result->'failures') = 'array' THEN r.result->'failures' ELSE '[]' END
    ) WITH ORDINALITY AS f(failure, n) ON true
    WHERE r.run_id = :run_id AND jsonb_typeof(r.result) = 'object'
    GROUP BY r.operation
    """
)


def pg_safe(value: Any) -> Any:
    """``value`` without NUL characters, which PostgreSQL's JSONB cannot hold."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {pg_safe(k): pg_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pg_safe(v) for v in value]
    return value


def drop_unreferenced_secrets(secret_ids: list[str]) -> Delete:
    """Delete those of ``secret_ids`` that no stored request refers to any more."""
    return SECRETS.delete().where(
        SECRETS.c.secret_id.in_(secret_ids),
        ~exists().where(SECRETS.c.secret_id == HEADERS_SECRET),
    )


@dataclass
class StoredResult:
    operation: str
    idx: int
    scenario: dict[str, Any]
    result: dict[str, Any] | None
    passed: bool | None


@dataclass
class OperationResults:
    """One operation's stored results, as an evaluation reads them."""

    #: Results stored, a spec problem's row included.
    scenarios: int
    #: Every status code the target answered with.
    statuses: set[int]
    #: Every failed check, in scenario order, each with its scenario's name under ``scenario``.
    failures: list[dict[str, Any]]


class QaStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, run_id: str, *, request: dict[str, Any], spec: dict[str, Any] | None) -> None:
        """The run's request (secret values replaced by a reference), before its workflow starts."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(RUNS)
                .values(run_id=run_id, request=request, spec=spec, created_at=datetime.now(UTC))
                .on_conflict_do_nothing()
            )

    async def copy_request(self, source: str, run_id: str) -> None:
        """Give ``run_id`` the request and spec stored under ``source`` (a schedule's) unless it has one."""
        copied = select(literal(run_id, Text), RUNS.c.request, RUNS.c.spec, func.now()).where(
            RUNS.c.run_id == source
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(RUNS)
                .from_select(["run_id", "request", "spec", "created_at"], copied)
                .on_conflict_do_nothing()
            )

    async def delete(self, run_id: str) -> None:
        """Delete a request, its results, and its headers secret once no other request refers to it."""
        async with self.engine.begin() as conn:
            secret = (await conn.execute(select(HEADERS_SECRET).where(RUNS.c.run_id == run_id))).scalar()
            await conn.execute(RESULTS.delete().where(RESULTS.c.run_id == run_id))
            await conn.execute(RUNS.delete().where(RUNS.c.run_id == run_id))
            if secret is not None:
                await conn.execute(drop_unreferenced_secrets([secret]))

    async def get(self, run_id: str, *, team_id: str | None = None) -> QaRunRow | None:
        """The run's request, spec and evaluation; with ``team_id``, only a run of that team's."""
        query = select(RUNS).where(RUNS.c.run_id == run_id)
        if team_id is not None:
            owner = Run.__table__.c  # type: ignore[attr-defined]
            query = query.where(exists().where(owner.run_id == run_id, owner.team_id == team_id))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return QaRunRow(**row._mapping) if row is not None else None

    async def save_spec(
        self, run_id: str, *, spec: dict[str, Any], version: str, operations: list[dict[str, Any]]
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                RUNS.update()
                .where(RUNS.c.run_id == run_id)
                .values(spec=spec, spec_version=version, operations=operations)
            )

    async def save_evaluation(self, run_id: str, evaluation: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(evaluation=evaluation))

    async def save_scenarios(self, run_id: str, operation: str, scenarios: Sequence[dict[str, Any]]) -> None:
        """Scenarios made ahead of execution (by the LLM, or copied for a replay)."""
        rows = [
            {
                "run_id": run_id,
                "operation": operation,
                "idx": i,
                "scenario": s,
                "result": None,
                "passed": None,
            }
            for i, s in enumerate(scenarios)
        ]
        async with self.engine.begin() as conn:
            await conn.execute(
                RESULTS.delete().where(RESULTS.c.run_id == run_id, RESULTS.c.operation == operation)
            )
            if rows:
                await conn.execute(insert(RESULTS), rows)

    async def save_results(self, run_id: str, rows: Iterable[StoredResult]) -> None:
        """Upsert results (of any operations of the run) in one statement.

        The rows travel as one JSON document that PostgreSQL takes apart: one ``json.dumps``
        in C, instead of a bound parameter (and a NUL scrub) per value of every row.
        """
        values = [
            {
                "operation": r.operation,
                "idx": r.idx,
                "scenario": r.scenario,
                "result": r.result,
                "passed": r.passed,
            }
            for r in rows
        ]
        if not values:
            return
        document = json.dumps(values, separators=(",", ":"))
        if "\\u0000" in document:  # JSONB holds no NUL (a false alarm only costs the scrub)
            document = json.dumps(pg_safe(values), separators=(",", ":"))
        async with self.engine.begin() as conn:
            await conn.execute(_UPSERT_RESULTS, {"run_id": run_id, "rows": document})

    async def results(
        self,
        run_id: str,
        *,
        operations: Sequence[str] | None = None,
        excerpts: bool = True,
    ) -> list[StoredResult]:
        """The run's scenarios and results; without ``excerpts``, response bodies are left out."""
        result: Any = RESULTS.c.result
        if not excerpts:  # results not yet there are JSON null, which has no keys to drop
            without = RESULTS.c.result.op("-")(literal("body_excerpt", Text))
            result = case((func.jsonb_typeof(RESULTS.c.result) == "object", without), else_=RESULTS.c.result)
            result = result.label("result")
        columns = [RESULTS.c.operation, RESULTS.c.idx, RESULTS.c.scenario, result, RESULTS.c.passed]
        query = select(*columns).where(RESULTS.c.run_id == run_id)
        if operations is not None:
            query = query.where(RESULTS.c.operation.in_(list(operations)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(RESULTS.c.operation, RESULTS.c.idx))).all()
        return [StoredResult(r.operation, r.idx, r.scenario, r.result, r.passed) for r in rows]

    async def operation_results(self, run_id: str) -> dict[str, OperationResults]:
        """What an evaluation reads of the run's results, by operation, summed up by PostgreSQL:
        a row per operation instead of one per scenario. Scenarios not yet run are left out."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_OPERATION_RESULTS, {"run_id": run_id})).all()
        return {r.operation: OperationResults(r.scenarios, set(r.statuses), r.failures) for r in rows}

    async def operations(self, run_id: str) -> list[dict[str, Any]] | None:
        """The run's operations as its spec was read (None before that), without the spec."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(RUNS.c.operations).where(RUNS.c.run_id == run_id))).scalar()

    async def copy_scenarios(self, source_run: str, run_id: str) -> int:
        """Give ``run_id`` the scenarios of ``source_run``, without results; how many."""
        source = [
            r for r in await self.results(source_run, excerpts=False) if not r.scenario.get(PROBLEM_ROW)
        ]
        by_operation: dict[str, list[dict[str, Any]]] = {}
        for row in source:
            by_operation.setdefault(row.operation, []).append(row.scenario)
        for operation, scenarios in by_operation.items():
            await self.save_scenarios(run_id, operation, scenarios)
        return len(source)
