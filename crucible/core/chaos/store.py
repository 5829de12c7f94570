"""Chaos experiments' definitions, SLO measurements and results in PostgreSQL.

Every write is an upsert on its natural key: a measurement is (run, phase, sample, SLO),
numbered by the workflow, so a retried activity rewrites the rows it wrote before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crucible.core.chaos.model import ExperimentSpec, SloMeasurement, SloResult
from crucible.core.tables import ChaosExperimentRow, ChaosResultRow, SloMeasurementRow

EXPERIMENTS: Table = ChaosExperimentRow.__table__  # type: ignore[attr-defined]
MEASUREMENTS: Table = SloMeasurementRow.__table__  # type: ignore[attr-defined]
RESULTS: Table = ChaosResultRow.__table__  # type: ignore[attr-defined]
#: Every chaos table, keyed by run id, for retention.
CHAOS_TABLES = (MEASUREMENTS, RESULTS, EXPERIMENTS)


@dataclass
class StoredMeasurement:
    slo: str
    phase: str
    sample: int
    target: str
    value: float | None
    met: bool
    note: str
    at: datetime


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


class ChaosStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save_experiment(self, run_id: str, spec: ExperimentSpec) -> None:
        row = {
            "run_id": run_id,
            "name": spec.name,
            "spec": asdict(spec),
            "created_by": spec.created_by,
            "created_at": datetime.now(UTC),
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(EXPERIMENTS).values(row).on_conflict_do_nothing())

    async def forget_experiment(self, run_id: str) -> None:
        """Delete the definition of an experiment whose run did not start."""
        async with self.engine.begin() as conn:
            await conn.execute(EXPERIMENTS.delete().where(EXPERIMENTS.c.run_id == run_id))

    async def experiment(self, run_id: str) -> dict[str, Any] | None:
        """The experiment's definition as stored, or None."""
        async with self.engine.connect() as conn:
            found = await conn.execute(select(EXPERIMENTS.c.spec).where(EXPERIMENTS.c.run_id == run_id))
            return found.scalar_one_or_none()

    async def record_measurements(
        self, run_id: str, sample: int, targets: dict[str, str], measurements: Sequence[SloMeasurement]
    ) -> None:
        rows = [
            {
                "run_id": run_id,
                "phase": m.phase,
                "sample": sample,
                "slo_name": m.slo,
                "target": targets.get(m.slo, ""),
                "actual_value": m.value,
                "met": m.met,
                "note": m.note,
                "measured_at": _at(m.at),
            }
            for m in measurements
        ]
        if not rows:
            return
        statement = insert(MEASUREMENTS).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[
                MEASUREMENTS.c.run_id,
                MEASUREMENTS.c.phase,
                MEASUREMENTS.c.sample,
                MEASUREMENTS.c.slo_name,
            ],
            set_={c: statement.excluded[c] for c in ("actual_value", "met", "note", "measured_at", "target")},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def measurements(self, run_id: str) -> list[StoredMeasurement]:
        """Every measurement of a run, in time order."""
        m = MEASUREMENTS.c
        query = select(MEASUREMENTS).where(m.run_id == run_id).order_by(m.measured_at, m.slo_name)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            StoredMeasurement(
                r["slo_name"],
                r["phase"],
                r["sample"],
                r["target"],
                r["actual_value"],
                r["met"],
                r["note"],
                r["measured_at"],
            )
            for r in rows
        ]

    async def record_results(self, run_id: str, results: Sequence[SloResult]) -> None:
        now = datetime.now(UTC)
        rows = [
            {
                "run_id": run_id,
                "metric_name": r.slo,
                "target": r.target,
                "unit": r.unit,
                "baseline_value": r.baseline,
                "chaos_value": r.chaos,
                "recovery_value": r.recovery,
                "chaos_met": r.chaos_met,
                "measured_at": now,
            }
            for r in results
        ]
        if not rows:
            return
        statement = insert(RESULTS).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[RESULTS.c.run_id, RESULTS.c.metric_name],
            set_={
                c: statement.excluded[c]
                for c in ("target", "unit", "baseline_value", "chaos_value", "recovery_value", "chaos_met")
            },
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def results(self, run_id: str) -> list[SloResult]:
        r = RESULTS.c
        async with self.engine.connect() as conn:
            rows = (
                (await conn.execute(select(RESULTS).where(r.run_id == run_id).order_by(r.metric_name)))
                .mappings()
                .all()
            )
        return [
            SloResult(
                x["metric_name"],
                x["target"],
                x["unit"],
                x["baseline_value"],
                x["chaos_value"],
                x["recovery_value"],
                x["chaos_met"],
            )
            for x in rows
        ]


async def prune_chaos_rows(conn: AsyncConnection, run_ids: Sequence[str]) -> int:
    """Delete the chaos rows of ``run_ids``; how many went."""
    deleted = 0
    for table in CHAOS_TABLES:
        deleted += (await conn.execute(table.delete().where(table.c.run_id.in_(run_ids)))).rowcount
    return deleted
