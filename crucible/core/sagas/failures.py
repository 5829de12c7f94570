"""How a saga's calls fail, and what the workflow reads from a failure.

The activities raise ``ApplicationError`` with one of these types, and details that hold
the attempt and the HTTP status (if any). The workflow reads them to describe the failure
and to decide whether a failed action may have taken effect on its target, in which case
it compensates that step too. Imported by workflow code: the standard library and
``temporalio`` only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

#: A 5xx, 408, 409, 425 or 429, a transport error, a broker that does not take the message. Retried.
CALL_FAILED = "SagaCallFailed"
#: Any other status outside 2xx. Final: sending it again will not help.
CALL_REJECTED = "SagaCallRejected"
#: The action's response has no JSON value at a capture's path. Final.
CAPTURE_FAILED = "SagaCaptureFailed"
#: A placeholder without a value, or a headers secret that cannot be opened. Final.
TEMPLATE_FAILED = "SagaTemplateFailed"
#: The worker's target policy refused the request before it was sent. Final. (The type
#: crucible.core.targets gives it; this module may not import that one.)
TARGET_REFUSED = "TargetRefused"
#: The verify response is not what ``expect`` says. Retried.
VERIFY_MISMATCH = "SagaVerifyMismatch"
#: Statuses outside 2xx that a later attempt may not get.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
#: What a target honouring ``Idempotency-Key`` answers while a request with the key is under way.
IN_PROGRESS = 409


def _application_error(exc: BaseException) -> tuple[ApplicationError | None, dict[str, Any]]:
    cause = exc.cause if isinstance(exc, ActivityError) else None
    if not isinstance(cause, ApplicationError):
        return None, {}
    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    return cause, details


def described(exc: BaseException) -> dict[str, Any]:
    """What the last attempt of a failed call said: its reason, error type, attempt and status."""
    if not isinstance(exc, ActivityError):  # cancelled by the saga as its result came in
        return {"reason": "interrupted", "error": type(exc).__name__}
    cause = exc.cause
    found: dict[str, Any] = {"reason": str(cause or exc)}
    error, details = _application_error(exc)
    if error is not None:
        found["error"] = error.type
        found.update({k: v for k, v in details.items() if v is not None})
    elif cause is not None:
        found["error"] = type(cause).__name__
    return found


def may_have_taken_effect(exc: BaseException) -> bool:
    """Whether a failed action may have been applied by its target: its outcome is uncertain.

    Only a definite answer to the last attempt says no: a 4xx (but a 409 on a retry, which may
    mean the first request is still being processed), or a request that could not be built,
    or that the target policy refused, the first time. A 5xx, a transport error, a failed
    publish, a timeout, an interruption or a worker's own error may all come after the target
    applied the request; a response that lacked a capture came with a 2xx, so the action took
    effect.
    """
    error, details = _application_error(exc)
    if error is None:
        return True
    attempt, status = details.get("attempt", 1), details.get("status")
    if error.type == CALL_REJECTED:
        return False
    if error.type == CALL_FAILED:
        return status is None or status >= 500 or (status == IN_PROGRESS and attempt > 1)
    if error.type in (TEMPLATE_FAILED, TARGET_REFUSED):
        return bool(attempt > 1)  # nothing was sent this time; earlier attempts were
    return True


def interrupted(exc: BaseException) -> bool:
    """Whether an action ended because the saga cancelled it."""
    return isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError)
    )
