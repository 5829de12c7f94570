"""The http processor against a real local server: templates, concurrency, keys, failures."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from multidict import CIMultiDict

from crucible.core.batch.plain import run_plain_async
from crucible.core.batch.processors import ChunkContext, build_processor, validate_options
from crucible.core.batch.records import Chunk
from crucible.stack.services import free_port
from tests.support.batch_data import process_in_chunks


@dataclass
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Target:
    """Answers every request with ``?status=`` (200 by default) after ``?wait=`` seconds."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.received.append(Received(request.method, request.raw_path, request.headers.copy(), body))
            await asyncio.sleep(float(request.query.get("wait", 0)))
            return web.json_response({"ok": True}, status=int(request.query.get("status", 200)))
        finally:
            self.in_flight -= 1


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    target = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", target.port).start()
    yield target
    await runner.cleanup()


async def test_the_plain_run_sends_what_chunks_send(
    tmp_path: Path, target: Target, http: httpx.AsyncClient
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "n": i}) + "\n" for i in range(1, 31)))
    options = {"url": target.url + "/items/{{record.id}}", "body": {"n": "{{record.n}}", "row": "{{row}}"}}
    plain = await run_plain_async(str(path), "http", options, http=http, job_id="job-9")
    processor = build_processor("http", options, http=http)
    lines, aggregates = await process_in_chunks(processor, path, size=7, profile={}, job_id="job-9")

    def timeless(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in line.items() if k != "elapsed_ms"} for line in lines]

    assert timeless(lines) == timeless(plain.lines)
    assert [line["id"] for line in plain.lines] == [f"r{i}" for i in range(1, 31)]
    assert (
        plain.summary
        == processor.summary(aggregates, {})
        == {
            "records": 30,
            "ok": 30,
            "failed": 0,
            "statuses": {"200": 30},
        }
    )
    # Each record was sent twice, by the plain run and by the chunks, with the same key.
    keys = Counter(r.headers["Idempotency-Key"] for r in target.received)
    assert keys == {f"job-9-{row}": 2 for row in range(1, 31)}
    assert json.loads(target.received[0].body) == {"n": 1, "row": 1}


def chunk(records: list[dict[str, Any]], *, first_row: int = 1) -> Chunk:
    return Chunk(index=0, first_row=first_row, start_offset=0, end_offset=0, records=records, format="jsonl")


async def test_requests_follow_the_template_a_few_at_a_time(target: Target, http: httpx.AsyncClient) -> None:
    options = {
        "url": target.url + "/items/{{record.name}}?row={{row}}&wait=0.03",
        "body": {"id": "{{record.id}}", "label": "n={{record.n}}", "tags": ["{{record.tags}}"], "fixed": 1},
        "concurrency": 4,
    }
    processor = build_processor("http", options, http=http, headers={"Authorization": "Bearer s3cret"})
    records = [{"id": i, "name": f"item {i}/x", "n": i * 1.5, "tags": ["a", i]} for i in range(1, 25)]
    output = await processor.process(chunk(records, first_row=101), {}, ChunkContext(job_id="job-7"))

    assert target.most_in_flight == 4
    assert [line["row"] for line in output.lines] == list(range(101, 125))
    assert all(line["ok"] and line["status"] == 200 and line["error"] is None for line in output.lines)
    assert output.lines[0]["id"] == 1 and output.lines[0]["elapsed_ms"] >= 30
    assert output.aggregates == {"records": 24, "ok": 24, "failed": 0, "statuses": {"200": 24}}

    by_key = {r.headers["Idempotency-Key"]: r for r in target.received}
    assert sorted(by_key) == sorted(f"job-7-{row}" for row in range(101, 125))
    first = by_key["job-7-101"]
    assert first.method == "POST"
    assert first.path == "/items/item%201%2Fx?row=101&wait=0.03"
    assert json.loads(first.body) == {"id": 1, "label": "n=1.5", "tags": [["a", 1]], "fixed": 1}
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert first.headers["Content-Type"] == "application/json"


async def test_each_failure_belongs_to_its_record(target: Target, http: httpx.AsyncClient) -> None:
    url = target.url + "/{{record.path}}?status={{record.status}}&wait={{record.wait}}"
    options = {"method": "put", "url": url, "timeout_s": 0.3}
    processor = build_processor("http", options, http=http, headers={"idempotency-key": "mine"})
    records = [
        {"id": "fine", "path": "ok", "status": 200, "wait": 0},
        {"id": "broken", "path": "x", "status": 500, "wait": 0},
        {"id": "slow", "path": "x", "status": 200, "wait": 5},
        {"id": "unnamed", "status": 200, "wait": 0},
        {"id": "fine-too", "path": "ok", "status": 204, "wait": 0},
    ]
    output = await processor.process(chunk(records), {}, ChunkContext(job_id="j"))
    results = [(line["id"], line["status"], line["ok"], line["error"]) for line in output.lines]
    assert results == [
        ("fine", 200, True, None),
        ("broken", 500, False, "unexpected status 500"),
        ("slow", None, False, "no answer within 0.3 s"),
        ("unnamed", None, False, "the record has no field 'path'"),
        ("fine-too", 204, True, None),
    ]
    assert output.aggregates == {
        "records": 5,
        "ok": 2,
        "failed": 3,
        "statuses": {"200": 1, "500": 1, "error": 2, "204": 1},
    }
    # The job's key replaces the caller's, whatever its case.
    assert sorted(k for r in target.received for k in r.headers.getall("Idempotency-Key")) == [
        "j-1",
        "j-2",
        "j-3",
        "j-5",
    ]
    assert {r.method for r in target.received} == {"PUT"}
    assert all(r.body == b"" for r in target.received)


async def test_a_closed_port_and_chosen_statuses(http: httpx.AsyncClient) -> None:
    closed = f"http://127.0.0.1:{free_port()}/x"
    processor = build_processor("http", {"url": closed, "expect_status": [404]}, http=http)
    output = await processor.process(chunk([{"id": 1}]), {}, ChunkContext(job_id="j"))
    [line] = output.lines
    assert (line["status"], line["ok"]) == (None, False)
    # httpx-aiohttp calls a refused connection ConnectTimeout, httpx's own transport ConnectError.
    assert line["error"].startswith("Connect") and "Cannot connect to host" in line["error"]
    assert line["elapsed_ms"] < 5000
    assert processor.summary(output.aggregates, {}) == {
        "records": 1,
        "ok": 0,
        "failed": 1,
        "statuses": {"error": 1},
    }


async def test_expected_statuses_replace_any_2xx(target: Target, http: httpx.AsyncClient) -> None:
    processor = build_processor(
        "http", {"url": target.url + "/?status={{record.s}}", "expect_status": [404]}, http=http
    )
    output = await processor.process(chunk([{"s": 404}, {"s": 200}]), {}, ChunkContext(job_id="j"))
    assert [(line["status"], line["ok"]) for line in output.lines] == [(404, True), (200, False)]


@pytest.mark.parametrize(
    ("options", "errors"),
    [
        ({}, [(("url",), "Field required")]),
        (
            {"url": "ftp://files.example.com/x"},
            [(("url",), "give an http or https URL, like https://api.example.com/items/{{record.id}}")],
        ),
        (
            {"url": "https://{{record.host}}/x"},
            [(("url",), "write the URL's host out; placeholders go in its path and query")],
        ),
        (
            {"url": "https://a.example/{{id}}"},
            [(("url",), "unknown placeholder {{id}}; use {{row}} or {{record.<field>}}")],
        ),
        (
            {"url": "https://a.example/", "body": {"a": [1, "{{ record }}"]}},
            [(("body", "a", 1), "unknown placeholder {{record}}; use {{row}} or {{record.<field>}}")],
        ),
        (
            {"url": "https://a.example/", "concurrency": 0},
            [(("concurrency",), "Input should be greater than or equal to 1")],
        ),
        (
            {"url": "https://a.example/", "expect_status": [200, 99]},
            [(("expect_status", 1), "Input should be greater than or equal to 100")],
        ),
        (
            {"url": "https://a.example/", "headers": {"a": "b"}},
            [(("headers",), "Extra inputs are not permitted")],
        ),
        (
            {"url": "https://a.example/", "method": "FETCH"},
            [(("method",), "Input should be 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD' or 'OPTIONS'")],
        ),
        (
            {
                "url": "https://a.example/{{record.id}}?q={{ row }}",
                "body": "{{record.payload}}",
                "method": "get",
            },
            [],
        ),
    ],
)
def test_http_options_are_checked(options: dict[str, Any], errors: list[Any]) -> None:
    assert validate_options("http", options) == errors
