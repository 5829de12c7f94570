"""Chaos Toolkit steps and call SLOs against a real local HTTP target and real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.chaos_actions import (
    CHAOS_ACTION_FAILED,
    CHAOS_ACTION_REFUSED,
    CHAOS_ACTION_UNANSWERED,
    OUTPUT_CHARS,
    ActionOutcome,
    ChaosActionActivities,
    RunActionInput,
    check_slo_call,
)
from crucible.core.chaos.calls import CommandAllowlist
from crucible.core.chaos.model import HTTP_SLO, PROCESS_SLO, ChaosAction, HttpCall, ProcessCall, Slo
from crucible.core.http import target_client
from tests.support.call_target import CallTarget, target

pytestmark = pytest.mark.timeout(30)
__all__ = ["target"]  # a fixture

ALLOWLIST = CommandAllowlist.parse("true,false,sleep,seq")


@pytest.fixture(scope="module")
async def activities() -> AsyncIterator[ChaosActionActivities]:
    async with target_client() as client:
        yield ChaosActionActivities(client, ALLOWLIST)


async def _run(
    activities: ChaosActionActivities, action: ChaosAction, phase: str = "method"
) -> ActionOutcome:
    outcome: ActionOutcome = await ActivityEnvironment().run(
        activities.run_chaos_action, RunActionInput("chaos-test", action, phase)
    )
    return outcome


async def _failure(activities: ChaosActionActivities, action: ChaosAction) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await _run(activities, action)
    return raised.value


async def test_an_http_action_that_succeeds(activities: ChaosActionActivities, target: CallTarget) -> None:
    action = ChaosAction("inject", http=HttpCall(f"{target.url}/echo", "POST", body={"fault": "on"}))
    outcome = await _run(activities, action)
    assert (outcome.name, outcome.phase, outcome.is_probe, outcome.ok, outcome.value) == (
        "inject",
        "method",
        False,
        True,
        200,
    )
    assert outcome.detail.startswith("HTTP 200 in ") and '"method":"POST"' in outcome.output
    assert target.seen[-1][:2] == ("POST", "/echo")


async def test_an_http_action_answered_badly_fails_for_good(
    activities: ChaosActionActivities, target: CallTarget
) -> None:
    action = ChaosAction("inject", http=HttpCall(f"{target.url}/status/500"))
    error = await _failure(activities, action)
    assert (error.type, error.non_retryable) == (CHAOS_ACTION_FAILED, True)
    assert error.message == "method step 'inject' failed: HTTP 500, expected below 400"
    (outcome,) = error.details
    assert outcome.value == 500 and not outcome.ok


async def test_an_unanswered_http_action_is_retried(activities: ChaosActionActivities) -> None:
    error = await _failure(activities, ChaosAction("inject", http=HttpCall("http://127.0.0.1:1/x")))
    assert (error.type, error.non_retryable) == (CHAOS_ACTION_UNANSWERED, False)
    assert "GET http://127.0.0.1:1/x failed" in str(error)


async def test_a_probe_reports_instead_of_raising(
    activities: ChaosActionActivities, target: CallTarget
) -> None:
    failing = ChaosAction("check", http=HttpCall(f"{target.url}/status/503"), is_probe=True)
    outcome = await _run(activities, failing, "rollback")
    assert (outcome.is_probe, outcome.ok, outcome.value, outcome.phase) == (True, False, 503, "rollback")
    assert outcome.detail == "HTTP 503, expected below 400"

    unanswered = ChaosAction("check", http=HttpCall("http://127.0.0.1:1/x", timeout_s=1), is_probe=True)
    outcome = await _run(activities, unanswered)
    assert (outcome.ok, outcome.value) == (False, None)

    command = ChaosAction("check", process=ProcessCall(["false"]), is_probe=True)
    outcome = await _run(activities, command)
    assert (outcome.ok, outcome.value, outcome.detail) == (False, 1, "false exited 1, expected 0")


async def test_process_actions(activities: ChaosActionActivities) -> None:
    outcome = await _run(activities, ChaosAction("stop", process=ProcessCall(["seq", "1", "1000"])))
    assert (outcome.ok, outcome.value) == (True, 0) and outcome.detail.startswith("exit 0 in ")
    assert len(outcome.output) == OUTPUT_CHARS + 1 and outcome.output.startswith("1\n2\n")

    failed = await _failure(activities, ChaosAction("stop", process=ProcessCall(["false"])))
    assert (failed.type, failed.non_retryable) == (CHAOS_ACTION_FAILED, True)
    assert failed.message == "method step 'stop' failed: false exited 1, expected 0"

    slow = ChaosAction("stop", process=ProcessCall(["sleep", "10"], timeout_s=0.3))
    timed_out = await _failure(activities, slow)
    assert (timed_out.type, timed_out.non_retryable) == (CHAOS_ACTION_FAILED, True)
    assert "sleep 10 timed out after 0.3 s and was killed" in str(timed_out)


async def test_commands_off_the_allowlist_are_refused(
    activities: ChaosActionActivities, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    for is_probe in (False, True):
        action = ChaosAction("touch", process=ProcessCall(["touch", str(marker)]), is_probe=is_probe)
        error = await _failure(activities, action)
        assert (error.type, error.non_retryable) == (CHAOS_ACTION_REFUSED, True)
        assert "command 'touch' is not allowed" in str(error)
    assert not marker.exists()


async def test_a_step_without_a_call_fails(activities: ChaosActionActivities) -> None:
    error = await _failure(activities, ChaosAction("nothing"))
    assert (error.type, error.non_retryable) == (CHAOS_ACTION_FAILED, True)


async def test_call_slos(target: CallTarget) -> None:
    async with target_client() as http:
        up = Slo("up", HTTP_SLO, http=HttpCall(f"{target.url}/status/200"))
        value, met, note = await check_slo_call(up, http=http, allowlist=ALLOWLIST)
        assert (value, met) == (200.0, True) and note.startswith("HTTP 200 in ")

        tolerant = Slo("tolerant", HTTP_SLO, http=HttpCall(f"{target.url}/status/404", expected_status=[404]))
        assert (await check_slo_call(tolerant, http=http, allowlist=ALLOWLIST))[:2] == (404.0, True)

        down = Slo("down", HTTP_SLO, http=HttpCall("http://127.0.0.1:1/"))
        value, met, note = await check_slo_call(down, http=http, allowlist=ALLOWLIST)
        assert (value, met) == (None, False) and "failed" in note

        exits = Slo("exits", PROCESS_SLO, process=ProcessCall(["false"], expected_exit=[0, 2]))
        assert await check_slo_call(exits, http=http, allowlist=ALLOWLIST) == (
            1.0,
            False,
            "false exited 1, expected 0, 2",
        )

        refused = Slo("refused", PROCESS_SLO, process=ProcessCall(["touch", "/tmp/x"]))
        value, met, note = await check_slo_call(refused, http=http, allowlist=ALLOWLIST)
        assert (value, met) == (None, False) and note.startswith("not run: command 'touch' is not allowed")

        with pytest.raises(ValueError, match="'promql'"):
            await check_slo_call(Slo("promql", query="up"), http=http, allowlist=ALLOWLIST)
