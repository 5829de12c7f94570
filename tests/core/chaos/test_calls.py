"""HTTP calls against a real local server, commands as real processes, and the command allowlist."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from crucible.core.chaos.calls import (
    EXCERPT_BYTES,
    CommandAllowlist,
    CommandNotAllowedError,
    run_http_call,
    run_process_call,
)
from crucible.core.chaos.model import HttpCall, ProcessCall
from crucible.core.http import target_client
from tests.support.call_target import CallTarget, target

pytestmark = pytest.mark.timeout(30)
__all__ = ["target"]  # a fixture

TRUE, FALSE, SLEEP, SH = (shutil.which(name) or name for name in ("true", "false", "sleep", "sh"))
ALLOWED = CommandAllowlist.parse("true, false, sleep, sh, env, seq, ls")


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with target_client() as pooled:
        yield pooled


# HTTP ------------------------------------------------------------------------------------


async def test_a_status_below_400_is_ok_when_no_status_is_expected(
    client: httpx.AsyncClient, target: CallTarget
) -> None:
    ok = await run_http_call(client, HttpCall(f"{target.url}/status/204"))
    assert (ok.ok, ok.value, ok.error, ok.unanswered) == (True, 204, "", False)
    assert ok.elapsed_ms > 0

    bad = await run_http_call(client, HttpCall(f"{target.url}/status/503"))
    assert (bad.ok, bad.value) == (False, 503)
    assert bad.error == "HTTP 503, expected below 400"
    assert bad.output == "status 503"


async def test_expected_statuses_decide(client: httpx.AsyncClient, target: CallTarget) -> None:
    wanted = HttpCall(f"{target.url}/status/404", expected_status=[404])
    assert (await run_http_call(client, wanted)).ok
    unwanted = HttpCall(f"{target.url}/status/200", expected_status=[201, 202])
    outcome = await run_http_call(client, unwanted)
    assert not outcome.ok and outcome.error == "HTTP 200, expected 201, 202"
    ranged = HttpCall(f"{target.url}/status/200", expected_status=list(range(500, 600)))
    assert (await run_http_call(client, ranged)).error == "HTTP 200, expected 500-599"


async def test_redirects_are_not_followed(client: httpx.AsyncClient, target: CallTarget) -> None:
    outcome = await run_http_call(client, HttpCall(f"{target.url}/redirect", expected_status=[200]))
    assert (outcome.ok, outcome.value) == (False, 302)


async def test_bodies_and_headers_are_sent(client: httpx.AsyncClient, target: CallTarget) -> None:
    as_json = HttpCall(f"{target.url}/echo", "post", body={"a": 1}, headers={"x-probe": "yes"})
    outcome = await run_http_call(client, as_json)
    assert outcome.ok and '"method":"POST"' in outcome.output
    assert '"body":"{\\"a\\": 1}"' in outcome.output and '"content_type":"application/json"' in outcome.output
    assert target.seen[-1][2]["x-probe"] == "yes"

    form = HttpCall(
        f"{target.url}/echo",
        "PUT",
        body="a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    outcome = await run_http_call(client, form)
    assert '"body":"a=1&b=2"' in outcome.output
    assert '"content_type":"application/x-www-form-urlencoded"' in outcome.output


async def test_a_slow_answer_times_out(client: httpx.AsyncClient, target: CallTarget) -> None:
    started = time.perf_counter()
    outcome = await run_http_call(client, HttpCall(f"{target.url}/slow?s=5", timeout_s=0.3))
    assert time.perf_counter() - started < 2
    assert (outcome.ok, outcome.value, outcome.unanswered) == (False, None, True)
    assert "timed out after 0.3 s" in outcome.error


async def test_a_refused_connection_is_an_unanswered_call(client: httpx.AsyncClient) -> None:
    outcome = await run_http_call(client, HttpCall("http://127.0.0.1:1/health"))
    assert (outcome.ok, outcome.value, outcome.unanswered) == (False, None, True)
    assert outcome.error.startswith("GET http://127.0.0.1:1/health failed: ")


async def test_a_large_body_is_cut_to_an_excerpt(client: httpx.AsyncClient, target: CallTarget) -> None:
    outcome = await run_http_call(client, HttpCall(f"{target.url}/big"))
    assert outcome.ok and outcome.output == "x" * EXCERPT_BYTES + "…"


# Processes -------------------------------------------------------------------------------


async def test_exit_codes_decide() -> None:
    ok = await run_process_call(ProcessCall(["true"]), ALLOWED)
    assert (ok.ok, ok.value, ok.error) == (True, 0, "")
    failed = await run_process_call(ProcessCall([FALSE]), ALLOWED)
    assert (failed.ok, failed.value, failed.unanswered) == (False, 1, False)
    assert failed.error == f"{FALSE} exited 1, expected 0"
    expected_failure = await run_process_call(ProcessCall(["false"], expected_exit=[1]), ALLOWED)
    assert expected_failure.ok


async def test_output_is_kept_and_capped() -> None:
    outcome = await run_process_call(ProcessCall(["seq", "1", "100000"]), ALLOWED)
    assert outcome.ok and outcome.output.startswith("1\n2\n3\n")
    assert len(outcome.output) == EXCERPT_BYTES + 1 and outcome.output.endswith("…")

    missing = await run_process_call(ProcessCall(["ls", "/no/such/path"]), ALLOWED)
    assert not missing.ok and missing.value == 2
    assert "/no/such/path" in missing.stderr
    assert missing.error.startswith("ls /no/such/path exited 2, expected 0: ")


async def test_a_timeout_kills_the_whole_process_group() -> None:
    call = ProcessCall([SH, "-c", "sleep 30 & echo $!; wait"], timeout_s=0.5)
    started = time.perf_counter()
    outcome = await run_process_call(call, ALLOWED)
    assert time.perf_counter() - started < 3
    assert (outcome.ok, outcome.value, outcome.unanswered) == (False, None, True)
    assert "timed out after 0.5 s and was killed" in outcome.error
    child = int(outcome.output.strip())
    assert not _alive(child)


async def test_a_daemon_holding_the_output_does_not_hold_the_call() -> None:
    call = ProcessCall([SH, "-c", "echo started; sleep 30 & echo $! >&2"], timeout_s=10)
    started = time.perf_counter()
    outcome = await run_process_call(call, ALLOWED)
    try:
        assert time.perf_counter() - started < 3
        assert (outcome.ok, outcome.output) == (True, "started\n")
    finally:
        os.kill(int(outcome.stderr.strip()), 9)


async def test_commands_get_a_small_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_DATABASE_URL", "postgresql://secret")
    outcome = await run_process_call(ProcessCall(["env"]), ALLOWED)
    assert outcome.ok and "PATH=" in outcome.output
    assert "CRUCIBLE_TEST_DATABASE_URL" not in outcome.output


async def test_a_command_off_the_allowlist_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(CommandNotAllowedError, match="'touch'"):
        await run_process_call(ProcessCall(["touch", str(marker)]), ALLOWED)
    assert not marker.exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


# The allowlist ---------------------------------------------------------------------------


def test_names_and_paths_resolve_to_the_same_file() -> None:
    allowlist = CommandAllowlist.parse(f"true,{FALSE}, nosuchcommand-xyz")
    for command in (["true"], [TRUE], [os.path.realpath(TRUE)], ["false", "--help"], [FALSE]):
        allowlist.check(command)
    with pytest.raises(CommandNotAllowedError) as refused:
        allowlist.check(["sleep", "1"])
    assert refused.value.executable == "sleep"
    message = str(refused.value)
    assert message.startswith("command 'sleep' is not allowed: sleep (")
    assert message.endswith("is not on the allowlist: true, " + FALSE + ", nosuchcommand-xyz")


def test_empty_and_unknown_commands_are_refused() -> None:
    with pytest.raises(CommandNotAllowedError, match="chaos_commands is empty"):
        CommandAllowlist.parse("").check(["true"])
    with pytest.raises(CommandNotAllowedError, match="the command is empty"):
        ALLOWED.check([])
    with pytest.raises(CommandNotAllowedError, match="'nosuchcommand-xyz' is not allowed: no executable"):
        ALLOWED.check(["nosuchcommand-xyz"])


def test_relative_paths_count_by_where_they_lead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    allowlist = CommandAllowlist.parse("true")
    (tmp_path / "true").symlink_to(os.path.realpath(TRUE))
    allowlist.check(["./true"])
    # A copy is another file: not listed.
    (tmp_path / "copy").mkdir()
    shutil.copy(TRUE, tmp_path / "copy" / "true")
    with pytest.raises(CommandNotAllowedError, match=r"'\./copy/true'"):
        allowlist.check(["./copy/true"])
    # A link by another name could make a multi-call binary (busybox) act as something else.
    (tmp_path / "rm").symlink_to(os.path.realpath(TRUE))
    with pytest.raises(CommandNotAllowedError, match=r"'\./rm'"):
        allowlist.check(["./rm"])
    with pytest.raises(CommandNotAllowedError, match="'x'"):
        allowlist.check(["x"])


def test_relative_entries_allow_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "true").symlink_to(os.path.realpath(TRUE))
    with pytest.raises(CommandNotAllowedError):
        CommandAllowlist.parse("./true").check(["./true"])


async def test_a_cancelled_call_leaves_nothing_running() -> None:
    task = asyncio.create_task(run_process_call(ProcessCall(["sleep", "31.25"]), ALLOWED))
    for _ in range(50):
        await asyncio.sleep(0.05)
        if pids := _pids_running(b"sleep\x0031.25\x00"):
            break
    assert pids
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _pids_running(cmdline: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == cmdline:
                pids.append(int(entry.name))
    return pids
