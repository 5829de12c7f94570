"""Saga runs recorded for the replay tests, with activities faked by name.

``python -m tests.support.record_history saga`` writes them. A fake call fails with a 500
when its URL says ``fail`` (it may have taken effect), with a 400 when it says ``refuse`` (it
did not), fails once per compensation round when it says ``flaky``, and takes a second and a half,
heartbeating, when it says ``slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crucible.core.sagas.failures import CALL_FAILED, CALL_REJECTED
from crucible.core.sagas.models import (
    AbortInput,
    Expectation,
    HttpCall,
    ResolveInput,
    SagaCall,
    SagaCallInput,
    SagaCallResult,
    SagaInput,
    SagaRetry,
    SagaStep,
)
from crucible.core.temporal import start_run
from crucible.workflows.saga import KIND, SagaWorkflow

ONCE = SagaRetry(max_attempts=1)
_rounds: Counter[str] = Counter()


async def _fake(request: SagaCallInput) -> SagaCallResult:
    assert request.call.http is not None
    url = request.call.http.url
    if "slow" in url:
        for _ in range(30):
            activity.heartbeat()  # so that an abort or a cancellation reaches it
            await asyncio.sleep(0.05)
    _rounds[request.idempotency_key] += 1
    if "refuse" in url:
        details = {"attempt": 1, "status": 400}
        raise ApplicationError(f"{url} answered 400", details, type=CALL_REJECTED, non_retryable=True)
    if "fail" in url or ("flaky" in url and _rounds[request.idempotency_key] == 1):
        raise ApplicationError(f"{url} answered 500", {"attempt": 1, "status": 500}, type=CALL_FAILED)
    captured = {name: f"{name}-1" for name in request.call.capture}
    return SagaCallResult(status=200, captured=captured)


@activity.defn(name="perform_saga_action")
async def perform_saga_action(request: SagaCallInput) -> SagaCallResult:
    return await _fake(request)


@activity.defn(name="compensate_saga_step")
async def compensate_saga_step(request: SagaCallInput) -> SagaCallResult:
    return await _fake(request)


@activity.defn(name="verify_saga_step")
async def verify_saga_step(request: SagaCallInput) -> SagaCallResult:
    return await _fake(request)


ACTIVITIES: list[Callable[..., Any]] = [perform_saga_action, compensate_saga_step, verify_saga_step]


def call(url: str, **extra: Any) -> SagaCall:
    return SagaCall(http=HttpCall("POST", f"http://shop{url}"), **extra)


def saga(*urls: str, compensations: tuple[str, ...] = ()) -> SagaInput:
    """Steps with these action URLs; the compensations' URLs, first step first."""
    steps = []
    for index, url in enumerate(urls):
        compensation = compensations[index] if index < len(compensations) else f"/undo{index + 1}"
        steps.append(
            SagaStep(
                f"step {index + 1}",
                call(url, capture={"order_id": "$.id"} if index == 0 else {}),
                compensation=call(compensation) if compensation else None,
                verify=call("/check", expect=Expectation(200, {"$.status": "CANCELLED"}))
                if index == 0
                else None,
                retry=ONCE,
                timeout_s=5,
            )
        )
    return SagaInput("recorded", steps, heartbeat_timeout_s=1)


async def when_state(handle: WorkflowHandle[Any, Any], state: str) -> None:
    async with asyncio.timeout(20):
        while (await handle.query(SagaWorkflow.progress))["state"] != state:
            await asyncio.sleep(0.05)


async def record_saga(env: WorkflowEnvironment, histories: Path, record_events: Callable[..., Any]) -> None:
    async with Worker(
        env.client, task_queue="record", workflows=[SagaWorkflow], activities=[record_events, *ACTIVITIES]
    ):
        runs = {
            "saga_completed": saga("/orders", "/stock"),
            # Step 3 may have taken effect: it is compensated first; step 2 has no compensation.
            "saga_compensated": saga("/orders", "/stock", "/pay-fail", compensations=("/undo1", "")),
            # Step 3 was refused: steps 2 and 1 wait in ManualIntervention; stray signals are recorded.
            "saga_manual_resolved": saga(
                "/orders", "/stock", "/pay-refuse", compensations=("/fail", "/flaky")
            ),
            # Step 2 is interrupted in flight and compensated as uncertain.
            "saga_aborted": saga("/orders", "/stock-slow", "/pay"),
            "saga_cancelled": saga("/orders", "/stock-slow", "/pay"),
        }
        for name, request in runs.items():
            handle = await start_run(env.client, SagaWorkflow.run, request, kind=KIND, task_queue="record")
            if name == "saga_manual_resolved":
                await handle.signal(SagaWorkflow.resolve, ResolveInput("retry", "nothing waits"))
                await when_state(handle, "ManualIntervention")
                await handle.signal(SagaWorkflow.abort, AbortInput("too late"))
                await handle.signal(SagaWorkflow.resolve, ResolveInput("retry", "fixed"))
                await asyncio.sleep(0.5)
                await when_state(handle, "ManualIntervention")
                await handle.signal(SagaWorkflow.resolve, ResolveInput("mark_resolved", "done by hand"))
            elif name in ("saga_aborted", "saga_cancelled"):
                await when_state(handle, "Step2_InProgress")
                if name == "saga_aborted":
                    await handle.signal(SagaWorkflow.abort, AbortInput("recorded"))
                else:
                    await handle.cancel()
            with contextlib.suppress(Exception):
                await handle.result()
            (histories / f"{name}.json").write_text((await handle.fetch_history()).to_json())
