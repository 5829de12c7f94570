"""Injecting an experiment's fault through its provider, and always rolling it back.

`FaultDriver` is workflow code. Its injection is shielded: a cancellation does not stop it
half way, and the rollback waits for it, since a rollback that overtook its injection
would leave the fault in place. The rollback runs once, whoever asks first (the normal end,
an abort, a failure, a cancellation); later callers wait for the same one. It never
raises: a rollback that failed says why, and the experiment escalates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from crucible.activities.chaos_actions import ChaosActionActivities, RunActionInput
    from crucible.activities.chaos_kubernetes import (
        ChaosKubernetesActivities,
        PodDeleteInput,
        PodsReadyInput,
        pod_params_from_dict,
    )
    from crucible.activities.chaos_process import (
        ChaosProcessActivities,
        ProcessFaultInput,
        ProcessRollbackInput,
        process_params_from_dict,
    )
    from crucible.activities.chaos_proxy import (
        ChaosProxyActivities,
        InjectProxyFaultInput,
        RollBackProxyFaultInput,
    )
    from crucible.core.chaos.model import (
        ACTIONS,
        KUBERNETES,
        PROCESS,
        PROXY,
        ChaosAction,
        FaultSpec,
        HttpCall,
    )
    from crucible.core.events import EventType
    from crucible.workflows.events import RunEventLog

CALL_TIMEOUT = timedelta(seconds=60)
INJECT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
#: A fault left in place hurts: the rollback tries harder, for about five minutes.
ROLLBACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=15), maximum_attempts=25
)
ACTION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
#: Extra time a wait-for-ready rollback may take beyond its own timeout.
READY_MARGIN_S = 30.0
#: Activities that wait heartbeat; one on a dead worker is retried elsewhere this soon.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)


async def preflight_http_check(run_id: str, call: HttpCall) -> dict[str, Any]:
    """The pre-flight's deployment check, as a probe: its outcome, never an exception."""
    outcome = await workflow.execute_activity_method(
        ChaosActionActivities.run_chaos_action,
        RunActionInput(run_id, ChaosAction("deployment_check", http=call, is_probe=True), "preflight"),
        start_to_close_timeout=CALL_TIMEOUT,
        retry_policy=ACTION_RETRY,
    )
    return dataclasses.asdict(outcome)


class FaultDriver:
    def __init__(self, log: RunEventLog, fault: FaultSpec) -> None:
        self.log = log
        self.spec = fault
        #: ``none``, ``injecting``, ``injected``, ``rolled back`` or ``rollback failed``.
        self.state = "none"
        self._injected: Any = None
        self._injection: asyncio.Future[None] | None = None
        self._rollback: asyncio.Future[str | None] | None = None

    @property
    def run_id(self) -> str:
        return self.log.run.run_id

    async def inject(self) -> None:
        # Set first: a fault half applied before a failure is rolled back too.
        self.state = "injecting"
        self._injection = asyncio.ensure_future(self._inject())
        await asyncio.shield(self._injection)

    async def _inject(self) -> None:
        provider = self.spec.provider
        params = self.spec.params
        shown: dict[str, Any] = self.spec.shown()
        if provider == PROXY:
            await workflow.execute_activity_method(
                ChaosProxyActivities.inject_proxy_fault,
                InjectProxyFaultInput(params["control_url"], params["proxy"], self.run_id, params["fault"]),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=INJECT_RETRY,
            )
        elif provider == PROCESS:
            self._injected = await workflow.execute_activity_method(
                ChaosProcessActivities.inject_process_fault,
                ProcessFaultInput(self.run_id, process_params_from_dict(params)),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=INJECT_RETRY,
            )
            shown["processes"] = dataclasses.asdict(self._injected)
        elif provider == KUBERNETES:
            self._injected = await workflow.execute_activity_method(
                ChaosKubernetesActivities.delete_pods,
                PodDeleteInput(self.run_id, pod_params_from_dict(params)),
                start_to_close_timeout=CALL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=INJECT_RETRY,
            )
            shown["pods"] = dataclasses.asdict(self._injected)
        elif provider == ACTIONS:
            shown["outcomes"], _ = await self._run_actions(self.spec.method, "method", INJECT_RETRY)
        self.state = "injected"
        await self.log.record(EventType.FAULT_INJECTED, shown)

    async def _run_actions(
        self, actions: list[ChaosAction], phase: str, retry: RetryPolicy, *, keep_going: bool = False
    ) -> tuple[list[Any], list[str]]:
        """Each action in turn, with its pauses on durable timers: their outcomes, and errors.

        A failed action raises, unless ``keep_going`` (a rollback runs every step it has).
        """
        outcomes: list[Any] = []
        errors: list[str] = []
        for action in actions:
            if action.pause_before_s > 0:
                await workflow.sleep(timedelta(seconds=action.pause_before_s))
            try:
                outcome = await workflow.execute_activity_method(
                    ChaosActionActivities.run_chaos_action,
                    RunActionInput(self.run_id, action, phase),
                    start_to_close_timeout=timedelta(seconds=self._timeout_of(action)) + CALL_TIMEOUT,
                    retry_policy=retry,
                )
            except ActivityError as exc:
                if not keep_going:
                    raise
                errors.append(f"{action.name}: {exc.cause or exc}")
                continue
            outcomes.append(dataclasses.asdict(outcome))
            if action.pause_after_s > 0:
                await workflow.sleep(timedelta(seconds=action.pause_after_s))
        return outcomes, errors

    @staticmethod
    def _timeout_of(action: ChaosAction) -> float:
        call = action.http or action.process
        return call.timeout_s if call is not None else 0.0

    async def roll_back(self) -> str | None:
        """Roll the fault back once; None when that worked (or there was nothing to do), else why not."""
        if self.state == "none":
            return None
        if self._rollback is None:
            self._rollback = asyncio.ensure_future(self._roll_back())
        try:
            return await asyncio.shield(self._rollback)
        except asyncio.CancelledError:
            await self._rollback
            raise

    async def _roll_back(self) -> str | None:
        if self._injection is not None:
            with contextlib.suppress(Exception):  # a failed injection failed the run already
                await self._injection
        shown: dict[str, Any] = {"provider": self.spec.provider}
        error: str | None = None
        try:
            undone, errors = await self._undo()
            shown.update(undone)
            error = "; ".join(errors) or None
        except ActivityError as exc:
            error = str(exc.cause or exc)
        self.state = "rollback failed" if error else "rolled back"
        if not self.log.closed:
            await self.log.record(EventType.FAULT_ROLLED_BACK, {"ok": error is None, "error": error, **shown})
        return error

    async def _undo(self) -> tuple[dict[str, Any], list[str]]:
        provider = self.spec.provider
        params = self.spec.params
        if provider == PROXY:
            await workflow.execute_activity_method(
                ChaosProxyActivities.roll_back_proxy_fault,
                RollBackProxyFaultInput(params["control_url"], params["proxy"], self.run_id),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=ROLLBACK_RETRY,
            )
            return {"proxy": params["proxy"], "fault_removed": self.run_id}, []
        if provider == PROCESS:
            process = process_params_from_dict(params)
            result = await workflow.execute_activity_method(
                ChaosProcessActivities.roll_back_process_fault,
                ProcessRollbackInput(self.run_id, process, self._injected),
                start_to_close_timeout=timedelta(seconds=process.ready_timeout_s + READY_MARGIN_S),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ROLLBACK_RETRY,
            )
            return {"processes": dataclasses.asdict(result)}, []
        if provider == KUBERNETES:
            pods = pod_params_from_dict(params)
            before = getattr(self._injected, "replicas_before", None)
            ready = await workflow.execute_activity_method(
                ChaosKubernetesActivities.await_pods_ready,
                PodsReadyInput(self.run_id, pods, before),
                start_to_close_timeout=timedelta(seconds=pods.ready_timeout_s + READY_MARGIN_S),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ROLLBACK_RETRY,
            )
            return {"pods": dataclasses.asdict(ready)}, []
        outcomes, errors = await self._run_actions(
            self.spec.rollbacks, "rollback", ROLLBACK_RETRY, keep_going=True
        )
        return {"outcomes": outcomes}, errors
