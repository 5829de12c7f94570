"""What the run routes do, over the database and Temporal."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.client import WorkflowExecutionStatus as ClientStatus
from temporalio.service import RPCError, RPCStatusCode

from crucible.api.kinds import KINDS
from crucible.core.errors import FieldError, InvalidRequestError, RunClosedError, RunNotFoundError
from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM, RunStatus, kind_of
from crucible.core.store import RunStore
from crucible.core.tables import Run
from crucible.core.temporal import KIND_KEY, ORG_KEY, TEAM_KEY, is_connect_failure

log = logging.getLogger(__name__)

#: How long a read waits for Temporal before answering from the database alone.
DESCRIBE_TIMEOUT = timedelta(seconds=2)

_STATUS: dict[ClientStatus, RunStatus] = {
    ClientStatus.RUNNING: RunStatus.RUNNING,
    ClientStatus.CONTINUED_AS_NEW: RunStatus.RUNNING,
    ClientStatus.COMPLETED: RunStatus.COMPLETED,
    ClientStatus.FAILED: RunStatus.FAILED,
    ClientStatus.CANCELED: RunStatus.CANCELLED,
    ClientStatus.TERMINATED: RunStatus.TERMINATED,
    ClientStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}


class RunService:
    def __init__(self, store: RunStore, client: Client) -> None:
        self.store = store
        self.client = client

    def _handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(run_id)

    async def get(self, run_id: str) -> Run:
        """The run's row; for a run whose workflow has not written yet, Temporal's view of it."""
        run = await self.store.get_run(run_id)
        if run is None:
            run = await self._from_temporal(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    async def _describe(self, run_id: str) -> WorkflowExecutionDescription | None:
        """Temporal's description of the run's workflow; None when Temporal does not know it."""
        try:
            return await self._handle(run_id).describe(rpc_timeout=DESCRIBE_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _from_temporal(self, run_id: str) -> Run | None:
        kind = kind_of(run_id)
        description = await self._describe(run_id) if kind else None
        if kind is None or description is None:
            return None
        attributes = description.typed_search_attributes
        status = _STATUS.get(description.status) if description.status else None
        return Run(
            run_id=run_id,
            kind=attributes.get(KIND_KEY) or kind,
            org_id=attributes.get(ORG_KEY) or DEFAULT_ORG,
            team_id=attributes.get(TEAM_KEY) or DEFAULT_TEAM,
            status=(status or RunStatus.RUNNING).value,
            created_at=description.start_time,
            updated_at=description.start_time,
            closed_at=description.close_time,
        )

    async def temporal_status(self, run_id: str) -> RunStatus | None:
        """Temporal's status of the run; None when Temporal does not know it."""
        description = await self._describe(run_id)
        if description is None or description.status is None:
            return None
        return _STATUS.get(description.status)

    async def refresh(self, run: Run) -> Run:
        """Bring a run that the database still shows as running up to date with Temporal.

        A workflow that was terminated or timed out could not write its terminal event;
        this writes it (``FAILED``, with the reason), so every log ends properly. When
        Temporal does not answer, the database's view is returned as it is.
        """
        if RunStatus(run.status).is_closed:
            return run
        try:
            status = await self.temporal_status(run.run_id)
        except (RPCError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not is_connect_failure(exc):
                raise
            log.warning("Temporal did not answer about %s: %s", run.run_id, exc)
            return run
        if status is None or not status.is_closed:
            return run
        event = await self.store.close_run(
            run.run_id, status=status, data={"reason": status.value.lower(), "source": "temporal"}
        )
        if event is not None:
            log.info("run %s closed as %s outside its workflow", run.run_id, status.value)
        return await self.get(run.run_id)

    async def _require_running(self, run: Run) -> None:
        status = await self.temporal_status(run.run_id)
        if status is None:
            raise RunNotFoundError(run.run_id)
        if status.is_closed:
            await self.refresh(run)
            raise RunClosedError(run.run_id, status.value)

    async def cancel(self, run_id: str) -> None:
        run = await self.get(run_id)
        await self._require_running(run)
        try:
            await self._handle(run_id).cancel()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # it finished in between
                raise RunClosedError(run_id, (await self.refresh(run)).status) from exc
            raise

    async def signal(self, run_id: str, name: str, body: dict[str, Any] | None) -> None:
        run = await self.get(run_id)
        routes = KINDS.get(run.kind)
        route = routes.signals.get(name) if routes else None
        if route is None:
            known = ", ".join(sorted(routes.signals)) if routes and routes.signals else "none"
            raise InvalidRequestError.one(
                ("path", "name"),
                f"{run.kind} runs have no signal {name!r}; signals they accept: {known}",
            )
        arg = _validate_signal_body(route.arg_type, body)
        await self._require_running(run)
        try:
            if route.arg_type is None:
                await self._handle(run_id).signal(route.method)
            else:
                await self._handle(run_id).signal(route.method, arg)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise RunClosedError(run_id, (await self.refresh(run)).status) from exc
            raise


def _validate_signal_body(arg_type: type | None, body: dict[str, Any] | None) -> Any:
    if arg_type is None:
        if body:
            raise InvalidRequestError.one(("body",), "this signal takes no body")
        return None
    try:
        return TypeAdapter(arg_type).validate_python(body or {})
    except ValidationError as exc:
        raise InvalidRequestError(
            [FieldError(("body", *e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        ) from exc
