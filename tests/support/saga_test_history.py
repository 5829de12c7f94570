"""Saga test runs recorded for the replay tests, with activities faked by name.

``python -m tests.support.record_history sagatest`` writes them. The fake consumer collects
the whole order saga, or, when the trigger's URL says ``uncompensated``, stops after
``PaymentFailed`` as a shop with its compensation switched off would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crucible.core.saga_tests.models import (
    CollectedEvents,
    CollectEventsInput,
    EventSummary,
    FaultPlan,
    FaultRequestInput,
    FaultRequestResult,
    InspectProcessInput,
    MarkTopicEndsInput,
    ProcessFault,
    ProcessIdentity,
    RequestSpec,
    SagaTestInput,
    SagaTestSpec,
    SignalProcessInput,
    SignalProcessResult,
    TopicOffsets,
    TriggerInput,
    TriggerResult,
)
from crucible.core.temporal import start_run
from crucible.workflows.saga_test import KIND, SagaTestWorkflow

SAGA = ["OrderCreated", "InventoryReserved", "PaymentFailed", "InventoryReleased", "OrderCancelled"]


@activity.defn(name="mark_topic_ends")
async def mark_topic_ends(request: MarkTopicEndsInput) -> TopicOffsets:
    return TopicOffsets({topic: {"0": 10, "1": 12} for topic in request.topics})


@activity.defn(name="send_trigger")
async def send_trigger(request: TriggerInput) -> TriggerResult:
    return TriggerResult(201, 4.2, "ord-recorded" if request.correlation_from else None)


@activity.defn(name="inspect_process")
async def inspect_process(request: InspectProcessInput) -> ProcessIdentity:
    return ProcessIdentity(request.pid, 123_456, "examples.shop")


@activity.defn(name="signal_process")
async def signal_process(request: SignalProcessInput) -> SignalProcessResult:
    return SignalProcessResult(True)


@activity.defn(name="send_fault_request")
async def send_fault_request(request: FaultRequestInput) -> FaultRequestResult:
    return FaultRequestResult(200)


@activity.defn(name="collect_correlated_events")
async def collect_correlated_events(request: CollectEventsInput) -> CollectedEvents:
    await asyncio.sleep(1)  # the fault's timed rollback fires meanwhile
    types = SAGA[:3] if request.correlation_id.endswith("uncompensated") else SAGA
    events = [
        EventSummary(t, "shop.orders", 0, 10 + i, f"2026-01-01T00:00:0{i}Z", 1_767_225_600.0 + i, event_id=t)
        for i, t in enumerate(types)
    ]
    positions = {topic: {"0": 10 + len(types)} for topic in request.offsets.offsets}
    return CollectedEvents(positions, events, len(events), read=20, timed_out=len(types) < len(SAGA))


ACTIVITIES: list[Callable[..., Any]] = [
    mark_topic_ends,
    send_trigger,
    inspect_process,
    signal_process,
    send_fault_request,
    collect_correlated_events,
]


def saga_test(*, uncompensated: bool = False) -> SagaTestInput:
    admin = "http://shop/admin/faults"
    fault = FaultPlan(
        http=RequestSpec("POST", admin, {"fail_payments": True}),
        rollback_http=RequestSpec("POST", admin, {"fail_payments": False}),
    )
    if uncompensated:  # a process fault, after the trigger, rolled back once the events are in
        fault = FaultPlan(process=ProcessFault(4242), rollback_signal="SIGCONT", when="after")
    else:  # rolled back by its timer while the events are collected
        fault.duration_s = 0.2
    spec = SagaTestSpec(
        ["shop.orders", "shop.inventory", "shop.payments"],
        RequestSpec("POST", "http://shop/orders", {"sku": "ITEM-1"}, header_names=["Authorization"]),
        SAGA,
        correlation_id="ord-uncompensated" if uncompensated else None,
        correlation_from=None if uncompensated else "$.order_id",
        fault=fault,
        settle_s=0.5,
        timeout_s=5,
        headers_secret="headers-recorded",
    )
    return SagaTestInput(spec, heartbeat_timeout_s=5)


async def record_saga_test(
    env: WorkflowEnvironment, histories: Path, record_events: Callable[..., Any]
) -> None:
    async with Worker(
        env.client, task_queue="record", workflows=[SagaTestWorkflow], activities=[record_events, *ACTIVITIES]
    ):
        runs = {"sagatest_passed": saga_test(), "sagatest_failed": saga_test(uncompensated=True)}
        for name, request in runs.items():
            handle = await start_run(
                env.client, SagaTestWorkflow.run, request, kind=KIND, task_queue="record"
            )
            with contextlib.suppress(Exception):
                await handle.result()
            (histories / f"{name}.json").write_text((await handle.fetch_history()).to_json())
