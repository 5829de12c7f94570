"""The read path: a run's whole event log, straight from PostgreSQL or through the API.

Each reader pages through every run's log the way a client would and checks that it
got seq 1..n in order; ``concurrency`` runs are read at a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import httpx
import psycopg

from bench.event_log.write import BenchmarkError
from crucible.api.routes.runs import API_PREFIX

#: The query ``RunStore.list_events`` runs, written out for psycopg.
EVENTS_QUERY = """
    SELECT run_id, seq, type, at, data FROM run_events
    WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""

ReadOne = Callable[[int, str], Awaitable[list[int]]]


def _check(run_id: str, seqs: list[int], events: int) -> None:
    if seqs != list(range(1, events + 1)):
        shown = f"{seqs[:3]}…{seqs[-3:]}"
        raise BenchmarkError(f"{run_id}: read {len(seqs)} events {shown}, expected 1..{events}")


async def _fan_out(run_ids: Sequence[str], concurrency: int, events: int, read_one: ReadOne) -> int:
    """Read every run with ``concurrency`` readers (reader ``i`` may own a connection); count events."""
    queue: Iterator[str] = iter(run_ids)
    total = 0

    async def reader(index: int) -> None:
        nonlocal total
        for run_id in queue:  # a shared iterator: each run goes to exactly one reader
            seqs = await read_one(index, run_id)
            _check(run_id, seqs, events)
            total += len(seqs)

    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(reader(index))
    return total


async def read_from_postgres(
    connections: Sequence[psycopg.AsyncConnection[Any]],
    run_ids: Sequence[str],
    *,
    events: int,
    page: int,
) -> int:
    """The baseline: the store's query over psycopg, one open connection per reader."""

    async def read_one(index: int, run_id: str) -> list[int]:
        seqs: list[int] = []
        while True:
            cursor = await connections[index].execute(EVENTS_QUERY, (run_id, seqs[-1] if seqs else 0, page))
            rows = await cursor.fetchall()
            seqs.extend(row[1] for row in rows)
            if len(rows) < page:
                return seqs

    return await _fan_out(run_ids, len(connections), events, read_one)


async def read_by_polling(
    http: httpx.AsyncClient, run_ids: Sequence[str], *, concurrency: int, events: int, page: int
) -> int:
    """``GET /api/v1/runs/{id}/events?after=&limit=`` until ``next_cursor`` is null."""

    async def read_one(_: int, run_id: str) -> list[int]:
        seqs: list[int] = []
        while True:
            response = await http.get(
                f"{API_PREFIX}/runs/{run_id}/events",
                params={"after": seqs[-1] if seqs else 0, "limit": page},
            )
            response.raise_for_status()
            body = response.json()
            seqs.extend(item["seq"] for item in body["items"])
            if body["next_cursor"] is None:
                if not body["done"]:
                    raise BenchmarkError(f"{run_id}: the last page does not say done")
                return seqs

    return await _fan_out(run_ids, concurrency, events, read_one)


async def read_by_sse(
    http: httpx.AsyncClient, run_ids: Sequence[str], *, concurrency: int, events: int
) -> int:
    """``GET /api/v1/runs/{id}/events/stream`` until the server ends it after the terminal event."""

    async def read_one(_: int, run_id: str) -> list[int]:
        seqs: list[int] = []
        async with http.stream("GET", f"{API_PREFIX}/runs/{run_id}/events/stream") as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    seqs.append(json.loads(line[5:])["seq"])
        return seqs

    return await _fan_out(run_ids, concurrency, events, read_one)
