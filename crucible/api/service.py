"""What the run routes do, over the database and Temporal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from crucible.api.kinds import KINDS
from crucible.core.errors import (
    DependencyUnavailableError,
    FieldError,
    InvalidRequestError,
    NotFoundError,
    RunClosedError,
    RunNotFoundError,
)
from crucible.core.events import RunEvent
from crucible.core.reconcile import RunReconciler, describe, run_from_temporal, status_of
from crucible.core.runs import kind_of
from crucible.core.store import RunStore
from crucible.core.tables import Run
from crucible.core.temporal import unreachable_reason

log = logging.getLogger(__name__)

#: A read asks Temporal about a run that looks alive at most this often (per API process).
REFRESH_EVERY_S = 3.0
#: A progress query that takes longer is given up: the run's summary still says where it stands.
PROGRESS_TIMEOUT_S = 2.0


class RefreshLimiter:
    """Remembers when each run was last checked with Temporal, so polling stays cheap."""

    def __init__(self, every_s: float = REFRESH_EVERY_S, *, capacity: int = 10_000) -> None:
        self.every_s = every_s
        self.capacity = capacity
        self._checked: dict[str, float] = {}

    def due(self, run_id: str) -> bool:
        now = time.monotonic()
        if now - self._checked.get(run_id, -self.every_s) < self.every_s:
            return False
        if len(self._checked) >= self.capacity:
            self._checked.clear()
        self._checked[run_id] = now
        return True


@contextmanager
def temporal_answers() -> Iterator[None]:
    """Turn "Temporal does not answer" into the 503 that says so."""
    try:
        yield
    except (RPCError, RuntimeError) as exc:
        if (reason := unreachable_reason(exc)) is not None:
            raise DependencyUnavailableError("temporal", reason) from exc
        raise


class RunService:
    def __init__(self, store: RunStore, reconciler: RunReconciler, limiter: RefreshLimiter) -> None:
        self.store = store
        self.client = reconciler.client
        self.reconciler = reconciler
        self.limiter = limiter

    def _handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(run_id)

    async def get(self, run_id: str) -> Run:
        """The run's row; for a run whose workflow has not written yet, Temporal's view of it."""
        run = await self.store.get_run(run_id)
        if run is None and kind_of(run_id) is not None:
            with temporal_answers():
                description = await describe(self.client, run_id)
            run = run_from_temporal(run_id, description) if description else None
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    async def refresh(self, run: Run, *, force: bool = False) -> Run:
        """The run, closed first if Temporal ended it without its workflow writing the end.

        Reading a run asks Temporal each time (``force``); polling its events asks at most
        every few seconds per run. When Temporal does not answer, the database's view is
        returned as it is.
        """
        if run.closed or not (force or self.limiter.due(run.run_id)):
            return run
        try:
            with temporal_answers():
                return await self.reconciler.refresh(run)
        except DependencyUnavailableError as exc:
            log.warning("Temporal did not answer about %s: %s", run.run_id, exc.reason)
            return run

    async def progress(self, run: Run) -> dict[str, Any] | None:
        """A running run's answer to its kind's progress query; None if it has none or is silent."""
        routes = KINDS.get(run.kind)
        if run.closed or routes is None or routes.progress is None:
            return None
        try:
            answer: dict[str, Any] = await self._handle(run.run_id).query(
                routes.progress, rpc_timeout=timedelta(seconds=PROGRESS_TIMEOUT_S)
            )
        except (RPCError, WorkflowQueryFailedError, RuntimeError) as exc:
            log.info("no progress from %s: %s", run.run_id, exc)
            return None
        return answer

    async def events_after(self, run: Run, *, after: int, limit: int) -> tuple[Run, list[RunEvent]]:
        """The run's events after ``after``, and the run as it stands when they were read.

        When there are none and the run looks alive, Temporal is asked (see :meth:`refresh`)
        whether it ended behind the log's back, and the end it was given is returned.
        """
        events = await self.store.list_events(run.run_id, after=after, limit=limit)
        if not events and not run.closed:
            run = await self.refresh(run)
            if run.closed:
                events = await self.store.list_events(run.run_id, after=after, limit=limit)
        return run, events

    async def _require_running(self, run: Run) -> None:
        with temporal_answers():
            description = await describe(self.client, run.run_id)
        if description is None:
            raise RunNotFoundError(run.run_id)
        status = status_of(description)
        if status.is_closed:
            if not run.closed:
                await self.reconciler.close(run, status)
            raise RunClosedError(run.run_id, status.value)

    async def cancel(self, run: Run) -> None:
        run_id = run.run_id
        await self._require_running(run)
        try:
            with temporal_answers():
                await self._handle(run_id).cancel()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # it finished in between
                raise RunClosedError(run_id, (await self.refresh(run, force=True)).status) from exc
            raise

    async def signal(self, run: Run, name: str, body: dict[str, Any] | None) -> None:
        routes = KINDS.get(run.kind)
        route = routes.signals.get(name) if routes else None
        if route is None:
            known = ", ".join(sorted(routes.signals)) if routes and routes.signals else "none"
            raise NotFoundError("signal", name, hint=f"{run.kind} runs accept: {known}")
        arg = _validate_signal_body(route.arg_type, body)
        await self.send(run, route.method, arg, with_arg=route.arg_type is not None)

    async def send(
        self, run: Run, method: Callable[..., Any], arg: Any = None, *, with_arg: bool = True
    ) -> None:
        """Signal ``method`` with ``arg`` to the running ``run``; 409 once it has finished."""
        run_id = run.run_id
        await self._require_running(run)
        handle = self._handle(run_id)
        try:
            with temporal_answers():
                if with_arg:
                    await handle.signal(method, arg)
                else:
                    await handle.signal(method)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise RunClosedError(run_id, (await self.refresh(run, force=True)).status) from exc
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
