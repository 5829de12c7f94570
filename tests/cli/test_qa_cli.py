"""`crucible qa run` against the real API and worker, testing the demo target."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import junitparser
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from crucible.cli import app
from crucible.cli.api_calls import follow
from crucible.cli.qa import _Api
from examples.demo_target.app import create_app as demo_app
from tests.support.qa import DEMO_SPEC, serving, wait_closed
from tests.support.servers import ApiServer

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

DEFECT = "GET /products/{product_id}"
SECRET = "s3cret-token-value"


@dataclass
class Exited:
    code: int
    stdout: str
    stderr: str


#: `crucible qa run …` in a child process, and in this process.
QaRun = Callable[..., Awaitable[Exited]]
Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
async def demo() -> AsyncIterator[ApiServer]:
    async with serving(demo_app()) as server:
        yield server


@pytest.fixture
def qa_run(env: dict[str, str]) -> QaRun:
    """`crucible qa run …` as a child process that follows the run, as a CI job would."""

    async def run(*args: str) -> Exited:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crucible",
            "qa",
            "run",
            *args,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 50)
        return Exited(await proc.wait(), stdout.decode(), stderr.decode())

    return run


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    """In-process, for commands that return at once. One at a time: CliRunner swaps sys.stdout."""
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        # The API runs in this event loop, so the (blocking) CLI runs in a thread.
        return await asyncio.to_thread(runner.invoke, app, ["qa", "run", *args], env=env)

    return invoke


async def test_a_run_with_a_defect_exits_1_with_a_summary_and_a_junit_report(
    qa_run: QaRun, demo: ApiServer, tmp_path: Path
) -> None:
    junit = tmp_path / "qa.xml"
    args = ["--spec", str(DEMO_SPEC), "--base-url", demo.url, "--seed", "7", "--junit", str(junit)]
    ran = await qa_run(*args, "--header", f"X-Api-Key: {SECRET}")

    assert ran.code == 1, ran.stdout + ran.stderr
    (row,) = [line for line in ran.stdout.splitlines() if line.startswith(DEFECT)]
    assert "FAILED" in row and "response_schema_conformance at $.price" in row
    assert "FAILED  7 of 8 operations passed, pass rate 87.5% (minimum 100%)" in ran.stdout
    assert "/report?format=html" in ran.stdout and "/namespaces/default/workflows/qa-" in ran.stdout
    # Progress went to stderr: one line per operation when it is not a terminal.
    assert f"✗ {DEFECT}" in ran.stderr and "✓ GET /health" in ran.stderr
    assert SECRET not in ran.stdout + ran.stderr

    cases = {case.name: case for suite in junitparser.JUnitXml.fromfile(str(junit)) for case in suite}
    assert len(cases) == 8
    assert not cases[DEFECT].is_passed and cases["GET /health"].is_passed


async def test_a_lower_pass_rate_passes_and_json_keeps_stdout_clean(qa_run: QaRun, demo: ApiServer) -> None:
    spec_url = f"{demo.url}/openapi.json"
    ran = await qa_run("--spec", spec_url, "--base-url", demo.url, "--min-pass-rate", "0.5", "--json")

    assert ran.code == 0, ran.stdout + ran.stderr
    report = json.loads(ran.stdout)
    assert (report["verdict"], report["pass_rate"], report["spec_url"]) == ("PASSED", 0.875, spec_url)
    assert "PASSED  7 of 8 operations passed" in ran.stderr


async def test_usage_errors_exit_2_and_start_no_run(cli: Cli, api: httpx.AsyncClient, tmp_path: Path) -> None:
    async def qa_runs() -> int:
        return len((await api.get("/api/v1/runs", params={"kind": "qa", "limit": 500})).json()["items"])

    before = await qa_runs()
    target = ["--base-url", "http://127.0.0.1:9"]

    missing = await cli("--spec", str(tmp_path / "nope.yaml"), *target)
    assert missing.exit_code == 2 and "no such file" in missing.output
    header = await cli("--spec", str(DEMO_SPEC), *target, "--header", "Authorization Bearer x")
    assert header.exit_code == 2 and '"Name: value"' in header.output
    refused = await cli("--spec", str(DEMO_SPEC), "--base-url", "localhost:8080", "--include-method", "FETCH")
    assert refused.exit_code == 2, refused.output
    assert "--base-url (base_url): base_url must be an absolute http(s) URL" in refused.output
    # Each method is checked on its own (the schema's items pattern), so the error names its index.
    assert "--include-method (include.methods.0): unknown HTTP method 'FETCH'" in refused.output

    assert await qa_runs() == before


async def test_no_wait_prints_the_run_id_and_returns(
    cli: Cli, api: httpx.AsyncClient, demo: ApiServer
) -> None:
    started = await cli("--spec", f"{demo.url}/no-such-spec.json", "--base-url", demo.url, "--no-wait")
    assert started.exit_code == 0, started.output
    run_id = started.stdout.strip()
    assert run_id.startswith("qa-") and "\n" not in run_id
    await wait_closed(api, run_id)  # it ran on its own


async def test_a_spec_url_that_404s_exits_3(qa_run: QaRun, demo: ApiServer) -> None:
    ran = await qa_run("--spec", f"{demo.url}/no-such-spec.json", "--base-url", demo.url)
    assert ran.code == 3, ran.stdout + ran.stderr
    assert "the spec is not usable" in ran.stderr and "404" in ran.stderr
    assert "error: the run failed" in ran.stderr


def test_a_dropped_stream_resumes_after_the_last_event_seen() -> None:
    def sse(seq: int, kind: str) -> bytes:
        envelope = json.dumps({"seq": seq, "type": kind, "data": {}})
        return f"id: {seq}\nevent: {kind}\ndata: {envelope}\n\n".encode()

    def dropping() -> Iterator[bytes]:
        yield sse(1, "REQUESTED") + sse(2, "SPEC_FETCHED")
        raise httpx.ReadError("connection reset")

    resumed_from: list[str | None] = []

    def api(request: httpx.Request) -> httpx.Response:
        resumed_from.append(request.headers.get("Last-Event-ID"))
        if len(resumed_from) == 1:
            return httpx.Response(200, content=dropping())
        return httpx.Response(200, content=sse(2, "SPEC_FETCHED") + sse(3, "COMPLETE"))

    notes = io.StringIO()
    events = list(follow(_Api(transport=httpx.MockTransport(api)), "qa-x", Console(file=notes)))
    assert [(e["seq"], e["type"]) for e in events] == [(1, "REQUESTED"), (2, "SPEC_FETCHED"), (3, "COMPLETE")]
    assert resumed_from == [None, "2"]
    assert "resuming after event 2" in notes.getvalue()
