"""`crucible runs …` against the real API."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker
from typer.testing import CliRunner

from crucible.cli import app
from crucible.core.store import RunStore
from tests.support.dev import Child
from tests.support.probe import ProbeInput
from tests.support.runs import start_probe, wait_for_event


async def test_list_and_show(cli, client: Client, worker: Worker, task_queue: str) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=2))
    await handle.result()

    listed = await cli("runs", "list", "--kind", "probe", "--status", "completed")
    assert listed.exit_code == 0, listed.output
    assert handle.id in listed.output and "COMPLETED" in listed.output

    as_json = json.loads((await cli("runs", "list", "--kind", "probe", "--json")).output)
    assert handle.id in [r["run_id"] for r in as_json["items"]]

    shown = await cli("runs", "show", handle.id)
    assert shown.exit_code == 0
    for text in ("COMPLETED", "PASSED", "/namespaces/default/workflows/", '"steps": 2'):
        assert text in shown.output
    assert json.loads((await cli("runs", "show", handle.id, "--json")).output)["last_seq"] == 4


async def test_watch_follows_a_run_to_its_end(
    cli, client: Client, worker: Worker, task_queue: str, store: RunStore, env: dict[str, str]
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    # A real process: it watches while the next command runs, as in two terminals.
    watching = await Child.start("runs", "watch", handle.id, "--json", env={**os.environ, **env})
    await watching.wait_for(r'"type": "STATE_CHANGED"', timeout=30)
    signalled = await cli("runs", "signal", handle.id, "proceed", '{"note": "from the cli"}')
    assert signalled.exit_code == 0, signalled.output

    assert await watching.wait(timeout=30) == 0, watching.output
    events = [json.loads(line) for line in watching.lines]
    assert [e["type"] for e in events] == ["REQUESTED", "STEP", "STATE_CHANGED", "PROCEEDED", "COMPLETE"]
    assert events[3]["data"] == {"note": "from the cli"}

    table = await cli("runs", "watch", handle.id)
    assert table.exit_code == 0 and "PROCEEDED" in table.output and "COMPLETE" in table.output


async def test_watch_exits_1_for_a_failed_run(cli, client: Client, worker: Worker, task_queue: str) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, fail_with="boom"))
    watched = await cli("runs", "watch", handle.id)
    assert watched.exit_code == 1
    assert "FAILED" in watched.output and "boom" in watched.output


async def test_cancel_and_refusals(
    cli, client: Client, worker: Worker, task_queue: str, store: RunStore
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    await wait_for_event(store, handle.id, "STATE_CHANGED")

    unknown = await cli("runs", "signal", handle.id, "approve")
    assert unknown.exit_code == 1 and "signal 'approve' not found" in unknown.output
    not_json = await cli("runs", "signal", handle.id, "proceed", "{note")
    assert not_json.exit_code == 1 and "not JSON" in not_json.output

    cancelled = await cli("runs", "cancel", handle.id)
    assert cancelled.exit_code == 0 and "cancellation requested" in cancelled.output
    await wait_for_event(store, handle.id, "CANCELLED")
    again = await cli("runs", "cancel", handle.id)
    assert again.exit_code == 1 and "409" in again.output

    missing = await cli("runs", "show", "probe-" + "0" * 32)
    assert missing.exit_code == 1 and "404" in missing.output


async def test_an_unreachable_api_says_what_to_do(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"CRUCIBLE_API_URL": "http://127.0.0.1:9", "CRUCIBLE_HOME": str(tmp_path)}
    result = await asyncio.to_thread(runner.invoke, app, ["runs", "list"], env=env)
    assert result.exit_code == 2
    assert "cannot reach the Crucible API" in result.output and "crucible dev" in result.output
