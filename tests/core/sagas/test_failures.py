"""Which failed actions may have taken effect, and so are compensated too."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError, TimeoutType

from crucible.core.sagas.failures import (
    CALL_FAILED,
    CALL_REJECTED,
    CAPTURE_FAILED,
    TARGET_REFUSED,
    TEMPLATE_FAILED,
    described,
    interrupted,
    may_have_taken_effect,
)


def activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="perform_saga_action",
        activity_id="1",
        retry_state=None,
    )
    error.__cause__ = cause
    return error


def failed(type: str, *, status: int | None = None, attempt: int = 1) -> ActivityError:
    details = {"attempt": attempt, "status": status}
    return activity_error(ApplicationError("it failed", details, type=type))


@pytest.mark.parametrize(
    ("error", "uncertain"),
    [
        (failed(CALL_FAILED, status=500, attempt=3), True),
        (failed(CALL_FAILED, status=503), True),
        (failed(CALL_FAILED), True),  # a transport error or a failed publish
        (failed(CALL_REJECTED, status=400, attempt=3), False),
        (failed(CALL_REJECTED, status=402), False),
        (failed(CALL_FAILED, status=429, attempt=3), False),
        (failed(CALL_FAILED, status=409), False),  # a conflict, answered to the first request
        (failed(CALL_FAILED, status=409, attempt=2), True),  # the first request may still be running
        (failed(CAPTURE_FAILED, status=201), True),  # it answered 2xx: it took effect
        (failed(TEMPLATE_FAILED), False),  # never sent
        (failed(TEMPLATE_FAILED, attempt=2), True),  # the first attempt was sent
        (failed(TARGET_REFUSED), False),  # the target policy refused it: never sent
        (failed(TARGET_REFUSED, attempt=3), True),
        (
            activity_error(
                TimeoutError("timed out", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
            ),
            True,
        ),
        (activity_error(CancelledError()), True),
        (activity_error(ApplicationError("boom", type="KeyError")), True),  # the worker's own error
        (asyncio.CancelledError(), True),
    ],
)
def test_which_failures_may_have_taken_effect(error: BaseException, uncertain: bool) -> None:
    assert may_have_taken_effect(error) is uncertain


def test_an_interruption_is_a_cancellation_by_the_saga() -> None:
    assert interrupted(activity_error(CancelledError())) and interrupted(asyncio.CancelledError())
    assert not interrupted(failed(CALL_FAILED, status=500))


def test_a_failure_is_described_by_its_last_attempt() -> None:
    assert described(failed(CALL_FAILED, status=500, attempt=2)) == {
        "reason": "SagaCallFailed: it failed",
        "error": CALL_FAILED,
        "attempt": 2,
        "status": 500,
    }
    timeout = TimeoutError(
        "activity StartToClose timeout", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[]
    )
    assert described(activity_error(timeout)) == {
        "reason": "activity StartToClose timeout",
        "error": "TimeoutError",
    }
