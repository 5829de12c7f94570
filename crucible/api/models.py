"""Response models of the run routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from crucible.core.events import RunEvent
from crucible.core.runs import RunStatus
from crucible.core.store import CURSOR_PATTERN
from crucible.core.tables import Run

#: ``?cursor=``: where the previous page of a list ended (its ``next_cursor``).
CursorQuery = Annotated[
    str | None,
    Query(
        pattern=f"^(?:{CURSOR_PATTERN[1:-1]})?$",
        max_length=220,
        description="`next_cursor` of the previous page (empty: the first page).",
    ),
]


class RunLinks(BaseModel):
    self: str
    events: str
    stream: str
    cancel: str
    temporal_ui: str


class RunPublic(BaseModel):
    run_id: str = Field(description="The Temporal workflow id; the same in the API, CLI and Web UI.")
    kind: str
    status: RunStatus = Field(description="Temporal's view: RUNNING, COMPLETED, FAILED, ….")
    state: str | None = Field(description="Where the kind's own state machine stands.")
    verdict: str | None = Field(description="What the run concluded, for kinds that conclude.")
    org_id: str
    team_id: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    last_seq: int = Field(description="The seq of the newest event.")
    summary: dict[str, Any]
    progress: dict[str, Any] | None = Field(
        None, description="A running run's own account of its progress (batch jobs: chunks, rate, ETA)."
    )
    temporal_ui_url: str
    links: RunLinks

    @classmethod
    def of(
        cls, run: Run, *, api_prefix: str, temporal_ui_url: str, progress: dict[str, Any] | None = None
    ) -> RunPublic:
        base = f"{api_prefix}/runs/{run.run_id}"
        return cls(
            **run.model_dump(),
            progress=progress,
            temporal_ui_url=temporal_ui_url,
            links=RunLinks(
                self=base,
                events=f"{base}/events",
                stream=f"{base}/events/stream",
                cancel=f"{base}/cancel",
                temporal_ui=temporal_ui_url,
            ),
        )


class RunList(BaseModel):
    items: list[RunPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class EventPublic(BaseModel):
    run_id: str
    seq: int
    type: str
    at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: RunEvent) -> EventPublic:
        return cls(run_id=event.run_id, seq=event.seq, type=event.type, at=event.at, data=event.data)


class EventList(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None = Field(
        description="The `after` for the next page when this one was full; null otherwise."
    )
    done: bool = Field(description="True once the run's terminal event has been returned.")


class Accepted(BaseModel):
    run_id: str
    detail: str


class ComponentHealth(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Health(BaseModel):
    detail: str
    components: dict[str, ComponentHealth]
