"""Keeping runs' rows and logs true to Temporal when a workflow could not write its end.

A workflow that is terminated, or times out, stops without writing its terminal event.
The API closes such a run's log when someone reads the run, and every worker sweeps
Temporal for recently closed runs, so lists are right even when nobody looks.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.client import WorkflowExecutionStatus as ClientStatus
from temporalio.service import RPCError, RPCStatusCode

from crucible.core.kafka import EventPublisher
from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM, RunStatus, kind_of
from crucible.core.store import CLOSED_FENCE, RunStore
from crucible.core.tables import Run
from crucible.core.temporal import KIND_KEY, ORG_KEY, TEAM_KEY

log = logging.getLogger(__name__)

#: How long a read waits for Temporal before answering from the database alone.
DESCRIBE_TIMEOUT = timedelta(seconds=2)

STATUS: dict[ClientStatus, RunStatus] = {
    ClientStatus.RUNNING: RunStatus.RUNNING,
    ClientStatus.CONTINUED_AS_NEW: RunStatus.RUNNING,
    ClientStatus.COMPLETED: RunStatus.COMPLETED,
    ClientStatus.FAILED: RunStatus.FAILED,
    ClientStatus.CANCELED: RunStatus.CANCELLED,
    ClientStatus.TERMINATED: RunStatus.TERMINATED,
    ClientStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}

#: Closed runs a sweep looks at; runs that complete normally write their own end.
_SWEEP_QUERY = (
    '(ExecutionStatus = "Terminated" OR ExecutionStatus = "TimedOut" OR ExecutionStatus = "Canceled" '
    'OR ExecutionStatus = "Failed") AND CloseTime >= "{since}"'
)


async def describe(client: Client, run_id: str) -> WorkflowExecutionDescription | None:
    """Temporal's description of the run's workflow; None when Temporal does not know it."""
    try:
        return await client.get_workflow_handle(run_id).describe(rpc_timeout=DESCRIBE_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def status_of(description: WorkflowExecutionDescription) -> RunStatus:
    return STATUS.get(description.status, RunStatus.RUNNING) if description.status else RunStatus.RUNNING


def run_from_temporal(run_id: str, description: WorkflowExecutionDescription) -> Run | None:
    """The row a run would have, as Temporal knows it (for runs that have not written one)."""
    kind = kind_of(run_id)
    if kind is None:
        return None
    attributes = description.typed_search_attributes
    return Run(
        run_id=run_id,
        kind=attributes.get(KIND_KEY) or kind,
        org_id=attributes.get(ORG_KEY) or DEFAULT_ORG,
        team_id=attributes.get(TEAM_KEY) or DEFAULT_TEAM,
        status=RunStatus.RUNNING.value,
        created_at=description.start_time,
        updated_at=description.start_time,
        closed_at=None,
    )


class RunReconciler:
    def __init__(self, store: RunStore, client: Client, publisher: EventPublisher) -> None:
        self.store = store
        self.client = client
        self.publisher = publisher

    async def close(self, run: Run, status: RunStatus) -> None:
        """Write the end of a closed run's log (once), and publish it."""
        data: dict[str, Any] = {"reason": status.value.lower(), "source": "temporal"}
        event = await self.store.close_run(run, status=status, data=data)
        if event is None:
            return
        log.info("run %s ended as %s outside its workflow; its log is closed", run.run_id, status.value)
        try:
            await self.publisher.publish([event], fence=CLOSED_FENCE)
        except Exception as exc:
            log.warning("the closing event of %s is stored, but Kafka did not take it: %s", run.run_id, exc)

    async def refresh(self, run: Run) -> Run:
        """``run``, brought up to date if Temporal closed it behind the database's back."""
        if run.closed:
            return run
        description = await describe(self.client, run.run_id)
        if description is None:
            return run
        status = status_of(description)
        if not status.is_closed:
            return run
        await self.close(run, status)
        return await self.store.get_run(run.run_id) or run

    async def sweep(self, *, since: datetime) -> int:
        """Close the logs of Crucible runs that Temporal closed since ``since``; how many."""
        closed = 0
        query = _SWEEP_QUERY.format(since=since.isoformat().replace("+00:00", "Z"))
        async for execution in self.client.list_workflows(query):
            if kind_of(execution.id) is None or execution.status is None:
                continue
            status = STATUS.get(execution.status)
            run = await self.store.get_run(execution.id)
            if status is None or (run is not None and run.closed):
                continue
            if run is None:
                description = await describe(self.client, execution.id)
                run = run_from_temporal(execution.id, description) if description else None
                if run is None:
                    continue
            await self.close(run, status)
            closed += 1
        return closed
