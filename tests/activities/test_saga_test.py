"""A saga test's fault activities: which processes they signal, and what their requests send."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.saga_test import FAULT_FAILED, FAULT_REFUSED, SagaTestActivities
from crucible.core.saga_tests.models import (
    FAULT,
    ROLLBACK,
    FaultRequestInput,
    InspectProcessInput,
    ProcessIdentity,
    RequestSpec,
    SignalProcessInput,
)
from crucible.core.saga_tests.processes import read_process
from crucible.core.secrets import SecretBox, SecretStore
from tests.support.fault_target import FaultTarget, fault_target

pytestmark = pytest.mark.timeout(20)

MARKER = "crucible-fault-target"
Handler = Callable[[httpx.Request], httpx.Response]


def activities(markers: Sequence[str] = (MARKER,), handler: Handler | None = None) -> SagaTestActivities:
    transport = httpx.MockTransport(handler or (lambda request: httpx.Response(200)))
    store = SecretStore(None, SecretBox(None))  # type: ignore[arg-type]
    return SagaTestActivities(store, httpx.AsyncClient(transport=transport), fault_processes=markers)


async def run(method: Callable[..., Any], arg: Any) -> Any:
    return await ActivityEnvironment().run(method, arg)


async def refusal(method: Callable[..., Any], arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(method, arg)
    assert caught.value.non_retryable
    return caught.value


@pytest.fixture
async def target() -> AsyncIterator[FaultTarget]:
    async with fault_target(MARKER) as t:
        yield t


async def test_a_marked_process_is_inspected_signalled_and_continued(target: FaultTarget) -> None:
    saga_test = activities(["other", MARKER])
    identity: ProcessIdentity = await run(saga_test.inspect_process, InspectProcessInput(target.pid))
    assert (identity.pid, identity.marker) == (target.pid, MARKER) and identity.started > 0

    stopped = await run(saga_test.signal_process, SignalProcessInput(FAULT, identity, "SIGSTOP"))
    assert stopped.signalled and await target.stopped()
    continued = await run(saga_test.signal_process, SignalProcessInput(ROLLBACK, identity, "SIGCONT"))
    assert continued.signalled
    assert await target.received() == ["SIGCONT"]


@pytest.mark.parametrize(
    ("markers", "reason"),
    [
        ([], "process faults are switched off: CRUCIBLE_FAULT_PROCESSES is empty on this worker"),
        (["examples.shop"], "command line holds none of CRUCIBLE_FAULT_PROCESSES (examples.shop)"),
    ],
)
async def test_a_process_without_a_marker_is_refused(
    target: FaultTarget, markers: list[str], reason: str
) -> None:
    refused = await refusal(activities(markers).inspect_process, InspectProcessInput(target.pid))
    assert refused.type == FAULT_REFUSED and reason in str(refused)


async def test_the_worker_its_ancestors_and_its_threads_are_never_signalled() -> None:
    # Every marker matches: only the worker's own lineage keeps these safe.
    saga_test = activities(["/", "python", "pytest", " "])
    for pid in (os.getpid(), os.getppid()):
        refused = await refusal(saga_test.inspect_process, InspectProcessInput(pid))
        assert f"pid {pid} is the worker or one of its ancestors" in str(refused)
    assert "will not signal pid 1" in str(await refusal(saga_test.inspect_process, InspectProcessInput(1)))

    started, stop = threading.Event(), threading.Event()
    tid: list[int] = []

    def waiting() -> None:
        tid.append(threading.get_native_id())
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=waiting)
    thread.start()
    try:
        started.wait(5)
        refused = await refusal(saga_test.inspect_process, InspectProcessInput(tid[0]))
        assert f"is a thread of process {os.getpid()}" in str(refused)
    finally:
        stop.set()
        thread.join()


async def test_a_reused_pid_is_never_signalled(target: FaultTarget) -> None:
    saga_test = activities()
    identity: ProcessIdentity = await run(saga_test.inspect_process, InspectProcessInput(target.pid))
    # Another process with the same pid: same pid, another start time.
    other = ProcessIdentity(identity.pid, identity.started - 1, identity.marker)

    refused = await refusal(saga_test.signal_process, SignalProcessInput(FAULT, other, "SIGUSR1"))
    assert refused.type == FAULT_REFUSED and f"pid {target.pid} is another process now" in str(refused)
    skipped = await run(saga_test.signal_process, SignalProcessInput(ROLLBACK, other, "SIGCONT"))
    assert not skipped.signalled and "is another process now" in skipped.note
    assert await target.received() == [], "neither signal was sent"

    target.process.kill()
    await target.process.wait()
    gone = await run(saga_test.signal_process, SignalProcessInput(ROLLBACK, identity, "SIGCONT"))
    assert not gone.signalled and "not signalled" in gone.note
    refused = await refusal(saga_test.inspect_process, InspectProcessInput(target.pid))
    assert f"no process {target.pid}" in str(refused)


async def test_a_rollback_to_a_process_that_has_exited_signals_nothing() -> None:
    saga_test = activities()
    # Not asyncio's subprocess: its child watcher would reap the exited child at once.
    code = "import sys; sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code, MARKER], stdin=subprocess.PIPE)  # noqa: ASYNC220
    try:
        identity: ProcessIdentity = await run(saga_test.inspect_process, InspectProcessInput(child.pid))
        assert child.stdin is not None
        child.stdin.close()  # it exits, and stays a zombie until it is waited for
        while read_process(child.pid).state != "Z":
            await asyncio.sleep(0.01)
        exited = await run(saga_test.signal_process, SignalProcessInput(ROLLBACK, identity, "SIGCONT"))
        assert not exited.signalled and exited.note == f"process {child.pid} has exited; not signalled"
    finally:
        child.kill()
        child.wait()


async def test_a_fault_request_carries_its_key_and_a_5xx_is_retried_but_a_4xx_is_not() -> None:
    seen: list[httpx.Request] = []
    answers = iter([503, 409])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(next(answers, 200), text="busy")

    saga_test = activities(handler=handler)
    request = FaultRequestInput(
        "sagatest-1", FAULT, RequestSpec("POST", "http://shop/admin/faults", {"on": True})
    )
    with pytest.raises(ApplicationError) as unavailable:
        await run(saga_test.send_fault_request, request)
    assert unavailable.value.type == FAULT_FAILED and not unavailable.value.non_retryable
    conflict = await refusal(saga_test.send_fault_request, request)
    assert "fault POST http://shop/admin/faults answered 409: busy" in str(conflict)
    sent = await run(saga_test.send_fault_request, request)
    assert sent.status == 200
    assert {r.headers["Idempotency-Key"] for r in seen} == {"sagatest-1-fault"}
    assert seen[0].content == b'{"on": true}' and seen[0].headers["content-type"] == "application/json"
