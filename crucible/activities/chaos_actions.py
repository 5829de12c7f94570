"""The steps of a Chaos Toolkit method or rollback, and the checks of ``http``/``process`` SLOs.

One activity runs one `ChaosAction`'s call: an HTTP request or an allowlisted command. The
pauses around it are not slept here: the workflow sleeps them on durable timers.

How a step ends:

- a probe (``is_probe``) returns its outcome, whatever the check found;
- an action that answered badly (a status or exit code not expected, a command that timed out
  or did not start) raises a non-retryable ``ChaosActionFailed`` that says why;
- an action whose request got no answer (a transport error or timeout) raises a retryable
  ``ChaosActionUnanswered``: the target may be back on the next attempt;
- a command off the ``chaos_commands`` allowlist, or a URL the target policy refuses, probe
  or action, raises a non-retryable ``ChaosActionRefused`` before anything runs.

An ``http`` SLO whose URL the target policy refuses is a breach, noted ``not sent: …``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import heartbeating
from crucible.core.chaos.calls import (
    CallOutcome,
    CommandAllowlist,
    CommandNotAllowedError,
    run_http_call,
    run_process_call,
)
from crucible.core.chaos.model import HTTP_SLO, PROCESS_SLO, ChaosAction, Slo
from crucible.core.targets import TargetRefused

CHAOS_ACTION_FAILED = "ChaosActionFailed"
CHAOS_ACTION_REFUSED = "ChaosActionRefused"
CHAOS_ACTION_UNANSWERED = "ChaosActionUnanswered"
#: Characters of a response body or stdout an outcome carries into workflow history.
OUTPUT_CHARS = 500


@dataclass
class RunActionInput:
    run_id: str
    action: ChaosAction
    #: ``method``, ``rollback`` (or ``preflight``, for the deployment check): for errors and logs.
    phase: str


@dataclass
class ActionOutcome:
    """What one step did, compact enough for workflow history and an event's data."""

    name: str
    phase: str
    is_probe: bool
    ok: bool
    #: The HTTP status or exit code; None when there was no answer.
    value: int | None
    elapsed_ms: float
    #: One line: the status and time, or what went wrong.
    detail: str
    #: The start of the response body or the command's stdout.
    output: str = ""


class ChaosActionActivities:
    """Runs Chaos Toolkit steps through the worker's pooled HTTP client and its command allowlist."""

    def __init__(self, http: httpx.AsyncClient, allowlist: CommandAllowlist) -> None:
        self.http = http
        self.allowlist = allowlist

    @activity.defn
    async def run_chaos_action(self, request: RunActionInput) -> ActionOutcome:
        """Make the step's call once and judge it (see the module's docstring for how it ends)."""
        action = request.action
        where = f"{request.phase} step {action.name!r}"
        with heartbeating():
            outcome = await _run(action, self.http, self.allowlist, where)
        result = ActionOutcome(
            action.name,
            request.phase,
            action.is_probe,
            outcome.ok,
            outcome.value,
            outcome.elapsed_ms,
            outcome.summary(),
            _short(outcome.output),
        )
        activity.logger.info("chaos %s of %s: %s", where, request.run_id, result.detail)
        if outcome.ok or action.is_probe:
            return result
        if outcome.unanswered and action.http is not None:
            raise ApplicationError(f"{where}: {outcome.error}", result, type=CHAOS_ACTION_UNANSWERED)
        raise ApplicationError(
            f"{where} failed: {outcome.error}", result, type=CHAOS_ACTION_FAILED, non_retryable=True
        )


async def _run(
    action: ChaosAction, http: httpx.AsyncClient, allowlist: CommandAllowlist, where: str
) -> CallOutcome:
    if action.http is not None:
        try:
            return await run_http_call(http, action.http)
        except TargetRefused as exc:
            raise ApplicationError(
                f"{where}: {exc.summary}", type=CHAOS_ACTION_REFUSED, non_retryable=True
            ) from None
    if action.process is None:
        raise ApplicationError(
            f"{where} has neither an HTTP call nor a command", type=CHAOS_ACTION_FAILED, non_retryable=True
        )
    try:
        return await run_process_call(action.process, allowlist)
    except CommandNotAllowedError as exc:
        raise ApplicationError(f"{where}: {exc}", type=CHAOS_ACTION_REFUSED, non_retryable=True) from None


def _short(text: str) -> str:
    return text[:OUTPUT_CHARS] + ("…" if len(text) > OUTPUT_CHARS else "")


async def check_slo_call(
    slo: Slo, *, http: httpx.AsyncClient, allowlist: CommandAllowlist
) -> tuple[float | None, bool, str]:
    """Measure an ``http`` or ``process`` SLO once: ``(value, met, note)``.

    The value is the status or exit code (None without an answer); the SLO is met when the
    call succeeds. The note says what came back, or why nothing did; a command off the
    allowlist is not run and counts as a breach. Never raises for what the target does.
    """
    if slo.kind == HTTP_SLO and slo.http is not None:
        try:
            outcome = await run_http_call(http, slo.http)
        except TargetRefused as exc:
            return None, False, f"not sent: {exc.summary}"
    elif slo.kind == PROCESS_SLO and slo.process is not None:
        try:
            outcome = await run_process_call(slo.process, allowlist)
        except CommandNotAllowedError as exc:
            return None, False, f"not run: {exc}"
    else:
        raise ValueError(f"SLO {slo.name!r} of kind {slo.kind!r} is not a call this function makes")
    value = None if outcome.value is None else float(outcome.value)
    return value, outcome.ok, outcome.summary()
