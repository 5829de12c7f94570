"""`crucible batch …` against the real API and workers, over small files."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from crucible.cli import app
from tests.support.batch_data import PERSON_SCHEMA, write_sample_csv, write_sample_jsonl
from tests.support.dev import Child
from tests.support.qa import wait_closed

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    """In this process. One at a time: CliRunner swaps sys.stdout."""
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        # The API runs in this event loop, so the (blocking) CLI runs in a thread.
        return await asyncio.to_thread(runner.invoke, app, ["batch", *args], env=env)

    return invoke


async def batch_runs(api: httpx.AsyncClient) -> int:
    return len((await api.get("/api/v1/runs", params={"kind": "batch", "limit": 500})).json()["items"])


async def test_a_followed_job_over_relative_paths_exits_0_with_a_summary(
    env: dict[str, str], tmp_path: Path
) -> None:
    planted = write_sample_csv(tmp_path / "rows.csv", 2_000, anomalies=3)
    (tmp_path / "out").mkdir()
    # A child process in the data's folder, as someone would type it there.
    args = ["--input", "rows.csv", "--processor", "anomaly-detection", "--output", "out/flagged.jsonl"]
    args += ["--chunk-size", "500", "--option", "z_threshold=4", "--option", 'methods=["zscore"]']
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "crucible", "batch", "run", *args),
        cwd=tmp_path,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = (part.decode() for part in await asyncio.wait_for(proc.communicate(), 50))
    assert await proc.wait() == 0, out + err

    output = tmp_path / "out" / "flagged.jsonl"
    flagged = [json.loads(line) for line in output.read_text().splitlines()]
    assert {line["row"] for line in flagged} >= set(planted)
    assert f"output:        {output}" in out
    assert "records:       2,000 in 4 chunks" in out
    assert f"output lines:  {len(flagged)}" in out and "failed chunks: 0" in out
    assert "scanned 2,000 csv records: 4 chunks" in err
    assert "chunks 4/4  2,000/2,000 records" in err and "records/s" in err


async def test_json_reports_the_run_and_a_completed_job_cannot_be_resumed(cli: Cli, tmp_path: Path) -> None:
    write_sample_csv(tmp_path / "rows.csv", 1_000, anomalies=2)
    output = tmp_path / "flagged.jsonl"
    ran = await cli(
        "run", "--input", str(tmp_path / "rows.csv"), "--processor", "anomaly-detection",
        "--output", str(output), "--json",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    assert (report["kind"], report["status"]) == ("batch", "COMPLETED")
    assert report["result"]["output"] == str(output) and report["result"]["records"] == 1_000
    assert report["result"]["output_lines"] == len(output.read_text().splitlines())

    again = await cli("resume", report["run_id"])
    assert again.exit_code == 3, again.output
    assert "409" in again.output and "only a failed or cancelled job is resumed" in again.output


async def test_bad_input_exits_2_naming_the_option_and_starts_nothing(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    before = await batch_runs(api)
    source = tmp_path / "rows.csv"
    write_sample_csv(source, 10, anomalies=1)
    job = ["--input", str(source), "--processor", "anomaly-detection", "--output", str(tmp_path / "o.jsonl")]

    refused = await cli("run", *job, "--option", "z_threshold=-1", "--option", "colour=red")
    assert refused.exit_code == 2, refused.output
    assert "the API refused the batch job" in refused.output
    assert "--option z_threshold (options.z_threshold): Input should be greater than 0" in refused.output
    assert "--option colour (options.colour): Extra inputs are not permitted" in refused.output
    shapeless = await cli("run", *job, "--option", "z_threshold")
    assert shapeless.exit_code == 2 and "give key=value" in shapeless.output
    not_an_object = tmp_path / "options.json"
    not_an_object.write_text("[1, 2]")
    listed = await cli("run", *job, "--options-file", str(not_an_object))
    assert listed.exit_code == 2 and "must hold an object" in listed.output

    assert await batch_runs(api) == before


async def test_a_failed_job_exits_3_and_resumes_and_a_skipped_chunk_exits_1(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "people.jsonl"
    write_sample_jsonl(source, 300, bad_rows=(150,))
    schema = tmp_path / "options.yaml"
    schema.write_text(json.dumps({"schema": PERSON_SCHEMA}))
    job = ["--input", str(source), "--processor", "schema-validation", "--options-file", str(schema)]
    job += ["--chunk-size", "100", "--max-chunk-retries", "0"]

    failed = await cli("run", *job, "--output", str(tmp_path / "a.jsonl"))
    assert failed.exit_code == 3, failed.output
    assert "chunk 1 failed" in failed.output and "row 150" in failed.output
    started = re.search(r"started (batch-\S+)", failed.output)
    assert started is not None
    run_id = started[1]
    assert f"crucible batch resume {run_id}" in failed.output

    skipped = await cli("run", *job, "--on-chunk-failure", "skip", "--output", str(tmp_path / "b.jsonl"))
    assert skipped.exit_code == 1, skipped.output
    assert "failed chunks: 1 (skipped)" in skipped.output and "chunk 1 from row 101" in skipped.output

    write_sample_jsonl(source, 300)  # the broken line fixed
    resumed = await cli("resume", run_id)
    assert resumed.exit_code == 0, resumed.output
    assert f"(resuming {run_id})" in resumed.output and f"carrying {run_id} on from chunk 1" in resumed.output
    assert (tmp_path / "a.jsonl").exists()


async def test_ctrl_c_exits_130_and_leaves_the_job_running(
    env: dict[str, str], api: httpx.AsyncClient, tmp_path: Path
) -> None:
    write_sample_csv(tmp_path / "rows.csv", 50_000, anomalies=3)
    args = ["--input", str(tmp_path / "rows.csv"), "--processor", "anomaly-detection", "--chunk-size", "250"]
    child = await Child.start(
        "batch", "run", *args, "--output", str(tmp_path / "o.jsonl"), env={**os.environ, **env}
    )
    run_id = (await child.wait_for(r"started (batch-\S+)", timeout=20))[1]
    # Signalled on "started" alone, the CLI may not have reached the loop that catches Ctrl-C yet.
    await child.wait_for(r"^scanned ", timeout=20)
    child.proc.send_signal(signal.SIGINT)

    assert await child.wait(timeout=20) == 130, child.output
    assert f"stopped following; {run_id} goes on" in child.output
    assert f"crucible runs cancel {run_id}" in child.output
    assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202, "it was still running"
    assert (await wait_closed(api, run_id, timeout=20))["status"] == "CANCELLED"
