"""The QA benchmark's baseline: the fastest plain script that sends a run's scenarios.

It reads the scenarios a Crucible run generated from PostgreSQL (``qa_results``),
turns each into the bytes it sends (URL with its query string, JSON body, headers)
before the clock starts, then sends them with one ``aiohttp.ClientSession`` from
``concurrency`` tasks that take the next request as soon as they are free, reading
each response whole. It checks nothing but the status class, after the clock stops.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
import psycopg
from yarl import URL

from crucible.core.qa.params import text
from crucible.core.qa.scenarios import ACCEPT, Scenario


@dataclass(frozen=True)
class StoredScenario:
    operation: str  # "GET /path/{id}", as Crucible keys operations
    idx: int
    scenario: Scenario


@dataclass(frozen=True)
class PlainRequest:
    method: str
    url: URL
    body: bytes | None
    headers: dict[str, str]
    expect: str


async def read_scenarios(dsn: str, run_id: str) -> list[StoredScenario]:
    """A run's scenarios, in the order Crucible stored them."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute(
            "SELECT operation, idx, scenario FROM qa_results WHERE run_id = %s ORDER BY operation, idx",
            (run_id,),
        )
        rows = await cursor.fetchall()
    return [StoredScenario(op, idx, Scenario.from_dict(data)) for op, idx, data in rows]


def build_request(base_url: str, stored: StoredScenario) -> PlainRequest:
    scenario = stored.scenario
    method, path = stored.operation.split(" ", 1)
    for name, value in scenario.path_params.items():
        path = path.replace("{" + name + "}", quote(text(value), safe=""))
    query = [
        (name, text(item))
        for name, value in scenario.query.items()
        for item in (value if isinstance(value, list) else [value])
    ]
    url = base_url.rstrip("/") + path + ("?" + urlencode(query) if query else "")
    headers = {name: text(value) for name, value in scenario.headers.items()}
    if scenario.cookies:
        headers["cookie"] = "; ".join(f"{k}={text(v)}" for k, v in scenario.cookies.items())
    body = None
    if scenario.has_body:
        media = scenario.media_type or "application/json"
        if media.split(";")[0].strip().lower().endswith("json"):
            body = json.dumps(scenario.body).encode()
        else:
            body = text(scenario.body).encode()
        headers["content-type"] = media
    return PlainRequest(method.upper(), URL(url, encoded=True), body, headers, scenario.expect)


def build_requests(base_url: str, scenarios: Sequence[StoredScenario]) -> list[PlainRequest]:
    return [build_request(base_url, stored) for stored in scenarios]


async def replay(
    session: aiohttp.ClientSession, requests: Sequence[PlainRequest], concurrency: int
) -> list[int]:
    """Send every request, ``concurrency`` at a time; the status of each."""
    statuses = [0] * len(requests)
    todo = iter(enumerate(requests))

    async def sender() -> None:
        for index, request in todo:
            async with session.request(
                request.method, request.url, data=request.body, headers=request.headers
            ) as response:
                await response.read()
                statuses[index] = response.status

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return statuses


def unexpected(requests: Sequence[PlainRequest], statuses: Sequence[int]) -> int:
    """How many answers disagree with their scenario: 2xx for valid data, 4xx for invalid."""
    return sum(
        1
        for request, status in zip(requests, statuses, strict=True)
        if (200 <= status < 300) != (request.expect == ACCEPT) or status >= 500
    )


def new_session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=30),
    )
