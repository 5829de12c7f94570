"""`crucible pipelines …` and `crucible schedules …` against the real API and workers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from typer.testing import Result

from tests.support.batch_data import write_sample_csv

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

Cli = Callable[..., Awaitable[Result]]

PIPELINE_YAML = """\
name: cli nightly
steps:
  - {type: batch, name: detect, job: {input: rows.csv, processor: anomaly-detection, output: flagged.jsonl}}
  - type: validate
    name: few anomalies
    assertions: [{path: summary.flagged, op: "<=", value: 50}]
"""


@pytest.fixture
async def pipeline_id(cli: Cli, tmp_path: Path) -> str:
    """A pipeline defined from a YAML file whose paths are relative to its folder."""
    write_sample_csv(tmp_path / "rows.csv", 1_000, anomalies=3)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE_YAML)
    created = await cli("pipelines", "create", "--file", str(tmp_path / "pipeline.yaml"), "--json")
    assert created.exit_code == 0, created.output
    pipeline = json.loads(created.stdout)
    assert pipeline["steps"][0]["job"]["input"] == str(tmp_path / "rows.csv")
    return str(pipeline["pipeline_id"])


async def test_a_pipeline_from_a_file_is_listed_shown_and_run(
    cli: Cli, pipeline_id: str, tmp_path: Path
) -> None:
    listed = await cli("pipelines", "list")
    assert listed.exit_code == 0 and pipeline_id in listed.output and "batch → validate" in listed.output
    shown = await cli("pipelines", "show", pipeline_id)
    assert shown.exit_code == 0, shown.output
    assert f"anomaly-detection: {tmp_path / 'rows.csv'} → {tmp_path / 'flagged.jsonl'}" in shown.output
    assert "summary.flagged <= 50" in shown.output

    ran = await cli("pipelines", "run", pipeline_id, "--follow")
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    assert [line.split()[0] for line in lines if line[:1] in "▶✓✗"] == ["▶", "✓", "▶", "✓"]
    assert any(line.startswith("✓ step 1 detect: 1,000 records") for line in lines), ran.output
    assert "COMPLETED  pipeline-" in ran.output
    assert (tmp_path / "flagged.jsonl").exists()

    deleted = await cli("pipelines", "delete", pipeline_id)
    assert deleted.exit_code == 0
    gone = await cli("pipelines", "run", pipeline_id)
    assert gone.exit_code == 3 and "404" in gone.output


async def test_a_schedule_is_created_listed_paused_triggered_and_deleted(cli: Cli, pipeline_id: str) -> None:
    name = f"cli hourly {uuid.uuid4().hex[:6]}"
    created = await cli("schedules", "create", "--name", name, "--every", "1h", "--pipeline", pipeline_id)
    assert created.exit_code == 0, created.output
    schedule_id = name.replace(" ", "-")
    assert f"created {schedule_id}: pipeline {pipeline_id}, every 1h; next at " in created.output

    async with asyncio.timeout(10):  # Temporal's list lags a moment behind
        while schedule_id not in (listed := await cli("schedules", "list", "--kind", "pipeline")).output:
            await asyncio.sleep(0.3)
    (row,) = [line for line in listed.output.splitlines() if schedule_id in line]
    assert f"pipeline {pipeline_id}" in row and "every 1h" in row and "active" in row

    paused = await cli("schedules", "pause", schedule_id, "--note", "quiet please")
    assert paused.exit_code == 0 and f"{schedule_id}: paused (quiet please)" in paused.output
    assert (await cli("schedules", "trigger", schedule_id)).exit_code == 0
    runs: list[dict[str, str]] = []
    async with asyncio.timeout(10):
        while not runs:
            shown = await cli("schedules", "show", schedule_id, "--json")
            runs = json.loads(shown.stdout)["recent_runs"]
    shown = await cli("schedules", "show", schedule_id)
    assert shown.exit_code == 0
    assert runs[0]["run_id"].startswith(f"pipeline-{schedule_id}-") and runs[0]["run_id"] in shown.output
    assert (
        "paused" in shown.output and "quiet please" in shown.output and "next actions (UTC):" in shown.output
    )

    assert (await cli("schedules", "delete", schedule_id)).exit_code == 0
    missing = await cli("schedules", "show", schedule_id)
    assert missing.exit_code == 3 and "404" in missing.output


async def test_bad_schedules_exit_2_naming_the_option(cli: Cli) -> None:
    both = await cli(
        "schedules", "create", "--name", "x", "--every", "1h", "--cron", "@daily", "--pipeline", "p"
    )
    assert both.exit_code == 2 and "give either --cron or --every" in both.output
    every = await cli("schedules", "create", "--name", "x", "--every", "soon", "--pipeline", "p")
    assert every.exit_code == 2 and "give a duration like 10s" in every.output
    refused = await cli(
        "schedules", "create", "--name", "x", "--cron", "61 * * * *", "--pipeline", "pl-missing",
        "--time-zone", "Mars/Olympus",
    )  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "--cron (cron): '61 * * * *' is not a valid cron expression" in refused.output
    assert "--time-zone (time_zone):" in refused.output
    unknown = await cli("schedules", "create", "--name", "x", "--every", "5m", "--pipeline", "pl-missing")
    assert unknown.exit_code == 3, unknown.output
    assert "pipeline 'pl-missing' not found" in unknown.output
