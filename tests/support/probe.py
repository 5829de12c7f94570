"""A small workflow that exercises the event log, signals and cancellation.

The stack's own tests run it; the kinds of run that users start have their own
workflows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from crucible.core.events import EventType
    from crucible.workflows.events import RunEventLog

PROBE_KIND = "probe"


@dataclass
class ProbeInput:
    steps: int = 3
    wait_for_proceed: bool = False
    fail_with: str | None = None
    hold_s: float = 0


@activity.defn
async def hold(seconds: float) -> int:
    """An activity that stays in flight for ``seconds``, heartbeating; returns its attempt."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        activity.heartbeat()
        await asyncio.sleep(0.1)
    return activity.info().attempt


@dataclass
class ProceedInput:
    note: str
    times: int = 1


@workflow.defn
class ProbeWorkflow:
    def __init__(self) -> None:
        self._proceed: ProceedInput | None = None

    @workflow.signal
    def proceed(self, arg: ProceedInput) -> None:
        self._proceed = arg

    @workflow.run
    async def run(self, input: ProbeInput) -> int:
        log = RunEventLog(kind=PROBE_KIND)

        async def body() -> int:
            await log.record(EventType.REQUESTED, {"steps": input.steps})
            for n in range(1, input.steps + 1):
                log.emit("STEP", {"n": n})
            await log.flush()
            if input.hold_s:
                await log.set_state("Holding")
                attempt = await workflow.execute_activity(
                    hold,
                    input.hold_s,
                    start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=timedelta(seconds=2),
                )
                await log.record("HELD", {"attempt": attempt})
            if input.wait_for_proceed:
                await log.set_state("Waiting")
                await workflow.wait_condition(lambda: self._proceed is not None)
                assert self._proceed is not None
                await log.record("PROCEEDED", {"note": self._proceed.note})
            if input.fail_with:
                raise ApplicationError(input.fail_with, type="ProbeFailure", non_retryable=True)
            log.run.verdict = "PASSED"
            log.run.summary = {"steps": input.steps}
            await log.close(EventType.COMPLETE, {"steps": input.steps})
            return input.steps

        return await log.guard(body)
