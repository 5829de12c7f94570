"""Pipeline definitions in PostgreSQL."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from crucible.core.batch.models import BatchJobRequest
from crucible.core.pipelines.models import Assertion, PipelineDefinition, PipelineStep
from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM
from crucible.core.store import decode_cursor, encode_cursor
from crucible.core.tables import PipelineRow

PIPELINES: Table = PipelineRow.__table__  # type: ignore[attr-defined]


def step_from_dict(data: dict[str, Any]) -> PipelineStep:
    batch = data.get("batch")
    return PipelineStep(
        **{
            **data,
            "batch": BatchJobRequest(**batch) if batch else None,
            "assertions": [Assertion(**a) for a in data.get("assertions", [])],
        }
    )


def step_secrets(step: dict[str, Any]) -> list[str]:
    """The secret ids a stored step refers to: its webhook URL, its job's headers and input."""
    batch = step.get("batch") or {}
    found = (step.get("webhook_secret"), batch.get("headers_secret"), batch.get("input_secret"))
    return [secret for secret in found if secret]


@dataclass
class PipelinePage:
    items: list[PipelineRow]
    next_cursor: str | None


class PipelineStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, definition: PipelineDefinition, *, org_id: str = DEFAULT_ORG, team_id: str = DEFAULT_TEAM
    ) -> PipelineRow:
        row = PipelineRow(
            pipeline_id=definition.pipeline_id,
            name=definition.name,
            org_id=org_id,
            team_id=team_id,
            steps=[dataclasses.asdict(step) for step in definition.steps],
            created_at=datetime.now(UTC),
        )
        async with self.engine.begin() as conn:
            await conn.execute(PIPELINES.insert().values(**row.model_dump()))
        return row

    async def get(self, pipeline_id: str) -> PipelineRow | None:
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(select(PIPELINES).where(PIPELINES.c.pipeline_id == pipeline_id))
            ).first()
        return PipelineRow(**found._mapping) if found else None

    async def definition(self, pipeline_id: str) -> PipelineDefinition | None:
        row = await self.get(pipeline_id)
        if row is None:
            return None
        return PipelineDefinition(row.pipeline_id, row.name, [step_from_dict(s) for s in row.steps])

    async def page(
        self, *, team_ids: list[str] | None = None, limit: int = 50, cursor: str | None = None
    ) -> PipelinePage:
        query = select(PIPELINES)
        if team_ids is not None:
            query = query.where(PIPELINES.c.team_id.in_(team_ids))
        if cursor is not None:
            created_at, pipeline_id = decode_cursor(cursor)
            query = query.where(
                tuple_(PIPELINES.c.created_at, PIPELINES.c.pipeline_id)
                < tuple_(literal(created_at), literal(pipeline_id))
            )
        query = query.order_by(PIPELINES.c.created_at.desc(), PIPELINES.c.pipeline_id.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = [PipelineRow(**r._mapping) for r in (await conn.execute(query)).all()]
        more = len(rows) > limit
        rows = rows[:limit]
        return PipelinePage(rows, encode_cursor(rows[-1].created_at, rows[-1].pipeline_id) if more else None)

    async def delete(self, pipeline_id: str) -> list[str] | None:
        """Delete the definition; the ids of the secrets its steps held, or None if there was none."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    delete(PIPELINES)
                    .where(PIPELINES.c.pipeline_id == pipeline_id)
                    .returning(PIPELINES.c.steps)
                )
            ).first()
        return None if row is None else [secret for step in row.steps for secret in step_secrets(step)]
