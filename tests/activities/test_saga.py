"""Saga calls over HTTP: what is sent, what is captured, and which failures are retried."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.saga import SagaActivities
from crucible.core.kafka import EventPublisher
from crucible.core.sagas.models import (
    Expectation,
    HttpCall,
    SagaCall,
    SagaCallInput,
    SagaCallResult,
)
from crucible.core.sagas.publisher import MessagePublisher
from crucible.core.secrets import SecretBox, SecretStore

Handler = Callable[[httpx.Request], httpx.Response]


def activities(handler: Handler) -> SagaActivities:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    unused = MessagePublisher.like(EventPublisher("127.0.0.1:1", topic="unused", idempotence=False))
    return SagaActivities(SecretStore(None, SecretBox(None)), client, unused)  # type: ignore[arg-type]


def request(url: str, phase: str = "action", **call: Any) -> SagaCallInput:
    return SagaCallInput(
        run_id="saga-1",
        step=2,
        phase=phase,
        call=SagaCall(http=HttpCall("POST", url, {"order": "{{order_id}}", "qty": "{{qty}}"}), **call),
        variables={"run_id": "saga-1", "order_id": "o/1", "qty": 2},
    )


async def run(handler: Handler, arg: SagaCallInput) -> SagaCallResult:
    saga = activities(handler)
    method = {"action": saga.perform_saga_action, "verify": saga.verify_saga_step}[arg.phase]
    result: SagaCallResult = await ActivityEnvironment().run(method, arg)
    return result


async def failure(handler: Handler, arg: SagaCallInput) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(handler, arg)
    return caught.value


async def test_an_action_sends_its_key_and_filled_templates_and_captures() -> None:
    seen: list[httpx.Request] = []

    def handler(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return httpx.Response(201, json={"id": "p-9", "lines": [{"amount": 12.5}]})

    arg = request(
        "http://shop/orders/{{order_id}}/pay", capture={"payment": "$.id", "amount": "$.lines[0].amount"}
    )
    done = await run(handler, arg)
    assert (done.status, done.captured) == (201, {"payment": "p-9", "amount": 12.5})
    assert seen[0].url.raw_path == b"/orders/o%2F1/pay"
    assert seen[0].headers["idempotency-key"] == "saga-1-step2-action"
    assert json.loads(seen[0].content) == {"order": "o/1", "qty": 2}


@pytest.mark.parametrize(
    ("status", "error", "final"),
    [
        (500, "SagaCallFailed", False),
        (429, "SagaCallFailed", False),
        (409, "SagaCallFailed", False),
        (402, "SagaCallRejected", True),
        (404, "SagaCallRejected", True),
        (302, "SagaCallRejected", True),
    ],
)
async def test_which_statuses_are_retried(status: int, error: str, final: bool) -> None:
    exc = await failure(lambda _: httpx.Response(status, text="nope"), request("http://shop/pay"))
    assert (exc.type, exc.non_retryable) == (error, final)
    assert exc.details[0] == {"attempt": 1, "status": status}
    assert f"answered {status}: 'nope'" in exc.message


async def test_a_transport_error_is_retried() -> None:
    def refuse(sent: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=sent)

    exc = await failure(refuse, request("http://shop/pay"))
    assert (exc.type, exc.non_retryable) == ("SagaCallFailed", False)


async def test_a_capture_the_response_lacks_fails_the_step_for_good() -> None:
    arg = request("http://shop/orders", capture={"order": "$.order.id"})
    exc = await failure(lambda _: httpx.Response(200, json={"id": "o-1"}), arg)
    assert (exc.type, exc.non_retryable) == ("SagaCaptureFailed", True)
    assert "no field 'order' at $" in exc.message
    exc = await failure(lambda _: httpx.Response(200, text="<html>"), arg)
    assert "the response is not JSON" in exc.message


async def test_a_placeholder_without_a_value_fails_for_good() -> None:
    exc = await failure(lambda _: httpx.Response(200), request("http://shop/{{refund_id}}"))
    assert (exc.type, exc.non_retryable) == ("SagaTemplateFailed", True)


async def test_a_verify_request_passes_or_says_what_differs() -> None:
    expect = Expectation(200, {"$.status": "CANCELLED", "$.order": "{{order_id}}"})
    arg = request("http://shop/orders/{{order_id}}", phase="verify", expect=expect)
    done = await run(lambda _: httpx.Response(200, json={"status": "CANCELLED", "order": "o/1"}), arg)
    assert done.status == 200
    exc = await failure(lambda _: httpx.Response(404, json={"status": "OPEN"}), arg)
    assert (exc.type, exc.non_retryable) == ("SagaVerifyMismatch", False), "the target may still settle"
    assert exc.message.endswith(
        'status 404, expected 200; $.status is "OPEN", expected "CANCELLED"; '
        "nothing at $.order (no field 'order' at $)"
    )
