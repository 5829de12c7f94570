"""The saga test workflow's fault handling, with Kafka and the event sink replaced by name."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from crucible.activities.saga_test import SagaTestActivities
from crucible.core.events import RecordEventsInput, RecordEventsResult, RunEvent
from crucible.core.saga_tests.models import (
    FAULT,
    FaultPlan,
    FaultRequestInput,
    FaultRequestResult,
    ProcessFault,
    RequestSpec,
    SagaTestInput,
)
from crucible.core.secrets import SecretBox, SecretStore
from crucible.core.temporal import start_run
from crucible.workflows.saga_test import KIND, SagaTestWorkflow
from tests.support import saga_test_history as fakes
from tests.support.fault_target import fault_target

pytestmark = pytest.mark.timeout(30)

MARKER = "crucible-fault-target"
ADMIN = "http://shop/admin/faults"


class Sink:
    """Stands in for the event sink: the run's events by number."""

    def __init__(self) -> None:
        self.by_seq: dict[int, RunEvent] = {}

    @activity.defn(name="record_events")
    async def record_events(self, batch: RecordEventsInput) -> RecordEventsResult:
        self.by_seq.update((e.seq, e) for e in batch.events)
        return RecordEventsResult(written=len(batch.events))

    @property
    def events(self) -> list[RunEvent]:
        return [self.by_seq[seq] for seq in sorted(self.by_seq)]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == event_type]


@pytest.fixture
def sink() -> Sink:
    return Sink()


def with_fault(fault: FaultPlan) -> SagaTestInput:
    request = fakes.saga_test()
    test = dataclasses.replace(request.test, fault=fault, headers_secret=None)
    return SagaTestInput(test, heartbeat_timeout_s=5)


def worker(client: Client, task_queue: str, sink: Sink, *activities: Callable[..., Any]) -> Worker:
    kafka: list[Callable[..., Any]] = [
        fakes.mark_topic_ends,
        fakes.send_trigger,
        fakes.collect_correlated_events,
    ]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[SagaTestWorkflow],
        activities=[sink.record_events, *kafka, *activities],
    )


async def start(client: Client, task_queue: str, request: SagaTestInput) -> WorkflowHandle[Any, Any]:
    return await start_run(client, SagaTestWorkflow.run, request, kind=KIND, task_queue=task_queue)


class SlowFault:
    """A fault request that takes a second to land, and what happened in which order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.sent = asyncio.Event()

    @activity.defn(name="send_fault_request")
    async def send_fault_request(self, request: FaultRequestInput) -> FaultRequestResult:
        self.log.append(f"{request.phase} sent")
        if request.phase == FAULT:
            self.sent.set()
            await asyncio.sleep(1)
            self.log.append("fault landed")
        return FaultRequestResult(200)


async def test_a_cancel_during_the_injection_rolls_back_after_it_lands(
    client: Client, task_queue: str, sink: Sink
) -> None:
    fault = SlowFault()
    plan = FaultPlan(http=RequestSpec("POST", ADMIN, {"on": True}), rollback_http=RequestSpec("POST", ADMIN))
    async with worker(client, task_queue, sink, fault.send_fault_request):
        handle = await start(client, task_queue, with_fault(plan))
        await asyncio.wait_for(fault.sent.wait(), 10)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    assert fault.log == ["fault sent", "fault landed", "rollback sent"]
    types = [e.type for e in sink.events]
    assert types[-3:] == ["FAULT_INJECTED", "FAULT_ROLLED_BACK", "CANCELLED"], types


async def test_a_retried_fault_request_does_not_signal_again(
    client: Client, task_queue: str, sink: Sink
) -> None:
    sent: list[httpx.Request] = []
    answers = iter([503])

    def shop(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(next(answers, 200))

    http = httpx.AsyncClient(transport=httpx.MockTransport(shop))
    store = SecretStore(None, SecretBox(None))  # type: ignore[arg-type]
    saga_test = SagaTestActivities(store, http, fault_processes=[MARKER])
    real: list[Callable[..., Any]] = [
        saga_test.inspect_process,
        saga_test.signal_process,
        saga_test.send_fault_request,
    ]
    async with fault_target(MARKER) as target, worker(client, task_queue, sink, *real):
        plan = FaultPlan(
            http=RequestSpec("POST", ADMIN, {"on": True}),
            process=ProcessFault(target.pid, "SIGUSR1"),
            rollback_http=RequestSpec("POST", ADMIN),
            rollback_signal="SIGUSR2",
        )
        handle = await start(client, task_queue, with_fault(plan))
        result = await handle.result()
        received = await target.received()

    assert result.verdict == "PASSED", result
    assert received == ["SIGUSR1", "SIGUSR2"], (
        "one signal each way, although the fault request was sent twice"
    )
    keys = [r.headers["Idempotency-Key"] for r in sent]
    assert keys == [f"{handle.id}-fault", f"{handle.id}-fault", f"{handle.id}-rollback"]
    [injected] = sink.of("FAULT_INJECTED")
    assert (injected["signalled"], injected["status"]) == (True, 200)
    assert injected["inspected"]["pid"] == target.pid and injected["inspected"]["marker"] == MARKER
    assert sink.of("FAULT_ROLLED_BACK") == [{"ok": True, "status": 200, "signalled": True, "note": None}]


async def test_a_refused_process_fails_the_test_and_says_why(
    client: Client, task_queue: str, sink: Sink
) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    saga_test = SagaTestActivities(SecretStore(None, SecretBox(None)), http)  # type: ignore[arg-type]
    real: list[Callable[..., Any]] = [
        saga_test.inspect_process,
        saga_test.signal_process,
        saga_test.send_fault_request,
    ]
    async with fault_target(MARKER) as target, worker(client, task_queue, sink, *real):
        plan = FaultPlan(process=ProcessFault(target.pid), rollback_signal="SIGCONT")
        handle = await start(client, task_queue, with_fault(plan))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert target.state() != "T"

    failed = sink.events[-1]
    assert failed.type == "FAILED" and failed.data["reason"] == "ApplicationError"
    assert "CRUCIBLE_FAULT_PROCESSES is empty" in failed.data["message"]
    assert sink.of("FAULT_ROLLED_BACK") == [], "nothing was signalled, so nothing is continued"
