"""A run's event log: polling and Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from crucible.api.access import ViewRun
from crucible.api.deps import RunServiceDep, SettingsDep
from crucible.api.models import EventList, EventPublic
from crucible.api.routes.runs import API_PREFIX
from crucible.api.service import RunService
from crucible.core.tables import Run

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/runs", tags=["events"])

STREAM_PAGE = 500
#: Events' seq is a 32-bit column: no run gets near it.
MAX_SEQ = 2**31 - 1
PING_S = 15


@router.get("/{run_id}/events", response_model=EventList, summary="Poll a run's events")
async def list_events(
    run: ViewRun,
    runs: RunServiceDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Return events with seq greater than this.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    run, events = await runs.events_after(run, after=after, limit=limit)
    seen = events[-1].seq if events else after
    return EventList(
        items=[EventPublic.of(e) for e in events],
        next_cursor=str(seen) if len(events) == limit else None,
        done=run.closed and seen >= run.last_seq,
    )


def _resume_point(last_event_id: str, after: int) -> int:
    if not last_event_id.strip():
        return after
    return min(max(int(last_event_id), 0), MAX_SEQ)


@router.get(
    "/{run_id}/events/stream",
    summary="Follow a run's events live (Server-Sent Events)",
    response_description="`text/event-stream`: `id: <seq>`, `event: <type>`, `data: <envelope>`. "
    "Ends after the run's terminal event; resumes from `Last-Event-ID`.",
    response_class=EventSourceResponse,
)
async def stream_events(
    run: ViewRun,
    runs: RunServiceDep,
    settings: SettingsDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Start after this seq.")] = 0,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=r"^\s*(-?[0-9]+)?\s*$",
            description="The seq of the last event the client has: the stream starts after it.",
        ),
    ] = "",
) -> EventSourceResponse:
    start = _resume_point(last_event_id, after)
    return EventSourceResponse(_follow(run, start, runs, settings.sse_poll_interval_s), ping=PING_S)


async def _follow(run: Run, after: int, runs: RunService, interval: float) -> AsyncIterator[ServerSentEvent]:
    if run.closed and after >= run.last_seq:
        return  # the client has seen the end already
    while True:
        try:
            run, events = await runs.events_after(run, after=after, limit=STREAM_PAGE)
        except Exception as exc:
            # The stream outlives a database or Temporal blip; the client keeps its connection.
            log.warning("event stream of %s waiting: %s", run.run_id, exc)
            await asyncio.sleep(max(interval * 4, 1.0))
            continue
        for event in events:
            yield ServerSentEvent(data=json.dumps(event.envelope()), event=event.type, id=str(event.seq))
            after = event.seq
            if event.is_terminal:
                return
        if not events:
            await asyncio.sleep(interval)
