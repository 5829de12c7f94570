"""A workflow that runs steady probes for a while, then cancels them as an experiment does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    # The payload converter reads SteadyProbe's type hints from this module, in the sandbox.
    import crucible.core.chaos.model  # noqa: F401
    from crucible.activities.steady_probes import (
        SteadyProbeActivities,
        SteadyProbesInput,
        SteadyProbesSummary,
    )


@dataclass
class ProbesForAWhile:
    probes: SteadyProbesInput
    run_for_s: float
    #: Whether the workflow waits for the probes to stop, and so receives their summary.
    wait_for_summary: bool = True
    heartbeat_timeout_s: float = 2.0


@workflow.defn
class ProbesForAWhileWorkflow:
    @workflow.run
    async def run(self, request: ProbesForAWhile) -> SteadyProbesSummary | None:
        handle = workflow.start_activity_method(
            SteadyProbeActivities.run_steady_probes,
            request.probes,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
            cancellation_type=(
                workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if request.wait_for_summary
                else workflow.ActivityCancellationType.TRY_CANCEL
            ),
        )
        await workflow.sleep(request.run_for_s)
        handle.cancel()
        try:
            return await handle
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                return None
            raise
