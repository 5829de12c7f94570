"""Saga activities: a step's action, compensation and verify request, over HTTP or Kafka.

Every call carries ``Idempotency-Key: <run id>-step<N>-<action|compensation|verify>`` (a
Kafka message as a header), the same on every attempt: a call retried, or run again after
its worker died, does not repeat its effect on a target that honours the key.

A call that fails raises an ``ApplicationError`` whose details hold the attempt (and the
HTTP status, if any); the step's retry policy decides what happens next, and the workflow
whether a failed action may have taken effect
(:func:`~crucible.core.sagas.failures.may_have_taken_effect`):

- ``SagaCallFailed``: a 5xx, 408, 409, 425 or 429, a transport error, a broker that does not
  take the message. Retried.
- ``SagaCallRejected``: any other status outside 2xx. Final: sending it again will not help.
- ``SagaCaptureFailed``: the action's response has no JSON value at a capture's path. Final.
- ``SagaTemplateFailed``: a placeholder without a value, or a headers secret that cannot be
  opened. Final.
- ``SagaVerifyMismatch``: the verify response is not what ``expect`` says. Retried, so a
  target that settles a little after the compensation still passes.
- ``TargetRefused``: the target policy refuses the URL (or a redirect hop); nothing was sent
  this time. Final.

The types are defined in :mod:`crucible.core.sagas.failures`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from aiokafka.errors import KafkaError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import heartbeating
from crucible.core.http import IDEMPOTENCY_HEADER, REQUEST_ERRORS, excerpt
from crucible.core.sagas.failures import (
    CALL_FAILED,
    CALL_REJECTED,
    CAPTURE_FAILED,
    RETRYABLE_STATUSES,
    TEMPLATE_FAILED,
    VERIFY_MISMATCH,
)
from crucible.core.sagas.jsonpath import JsonPath, PathNotFoundError
from crucible.core.sagas.models import (
    VERIFY,
    Expectation,
    HttpCall,
    KafkaCall,
    SagaCallInput,
    SagaCallResult,
)
from crucible.core.sagas.publisher import MessagePublisher
from crucible.core.sagas.templates import MissingVariableError, render_json, render_text
from crucible.core.secrets import SecretStore, SecretsUnavailableError
from crucible.core.targets import TARGET_REFUSED, TargetRefused

_quote_all = functools.partial(quote, safe="")


def _failure(message: str, type: str, *, status: int | None = None, final: bool = False) -> ApplicationError:
    details = {"attempt": activity.info().attempt, "status": status}
    return ApplicationError(message, details, type=type, non_retryable=final)


def _json_of(response: httpx.Response) -> tuple[Any, str | None]:
    try:
        return response.json(), None
    except ValueError:
        return None, f"the response is not JSON: {excerpt(response)!r}"


def mismatches(expect: Expectation, status: int, document: Any, problem: str | None) -> list[str]:
    """How a verify response differs from what is expected; empty when it matches."""
    found: list[str] = []
    if expect.status is not None and status != expect.status:
        found.append(f"status {status}, expected {expect.status}")
    elif expect.status is None and not 200 <= status < 300:
        found.append(f"status {status}, expected a 2xx")
    if expect.json and problem is not None:
        return [*found, problem]
    for path, wanted in expect.json.items():
        try:
            value = JsonPath.parse(path).find(document)
        except PathNotFoundError as exc:
            found.append(str(exc))
            continue
        if value != wanted:
            found.append(f"{path} is {json.dumps(value)}, expected {json.dumps(wanted)}")
    return found


class SagaActivities:
    def __init__(self, secrets: SecretStore, client: httpx.AsyncClient, messages: MessagePublisher) -> None:
        self.secrets = secrets
        self.client = client
        self.messages = messages

    @activity.defn
    async def perform_saga_action(self, request: SagaCallInput) -> SagaCallResult:
        """Run a step's action; its captures are what the result carries on to later steps."""
        return await self._call(request)

    @activity.defn
    async def compensate_saga_step(self, request: SagaCallInput) -> SagaCallResult:
        """Undo a completed step."""
        return await self._call(request)

    @activity.defn
    async def verify_saga_step(self, request: SagaCallInput) -> SagaCallResult:
        """Check, after compensation, that the step's effect is gone."""
        return await self._call(request)

    async def _call(self, request: SagaCallInput) -> SagaCallResult:
        call = request.call
        with heartbeating():
            try:
                if call.http is not None:
                    return await self._http(request, call.http)
                assert call.kafka is not None
                return await self._kafka(request, call.kafka)
            except MissingVariableError as exc:
                raise _failure(str(exc), TEMPLATE_FAILED, final=True) from None

    async def _headers(self, request: SagaCallInput) -> dict[str, str]:
        if not request.headers_secret:
            return {}
        try:
            headers: Mapping[str, Mapping[str, str]] = await self.secrets.get(request.headers_secret)
        except SecretsUnavailableError as exc:
            raise _failure(f"the step's headers cannot be read: {exc}", TEMPLATE_FAILED, final=True) from None
        return {
            name: render_text(value, request.variables)
            for name, value in headers.get(request.phase, {}).items()
        }

    async def _http(self, request: SagaCallInput, http: HttpCall) -> SagaCallResult:
        variables = request.variables
        url = render_text(http.url, variables, quote=_quote_all)
        body = None if http.body is None else render_json(http.body, variables)
        headers = {**await self._headers(request), IDEMPOTENCY_HEADER: request.idempotency_key}
        what = f"{http.method} {url}"
        try:
            response = await self.client.request(
                http.method, url, headers=headers, json=body, timeout=request.timeout_s
            )
        except TargetRefused as exc:
            raise _failure(f"{what}: {exc.summary}", TARGET_REFUSED, final=True) from None
        except REQUEST_ERRORS as exc:
            raise _failure(f"{what}: {type(exc).__name__}: {exc}", CALL_FAILED) from None
        status = response.status_code
        attempt = activity.info().attempt
        if request.phase == VERIFY:
            document, problem = _json_of(response)
            if found := mismatches(_rendered(request.call.expect, variables), status, document, problem):
                raise _failure(f"{what}: {'; '.join(found)}", VERIFY_MISMATCH, status=status)
            return SagaCallResult(status=status, attempt=attempt)
        if not 200 <= status < 300:
            final = status < 500 and status not in RETRYABLE_STATUSES
            message = f"{what} answered {status}: {excerpt(response)!r}"
            raise _failure(message, CALL_REJECTED if final else CALL_FAILED, status=status, final=final)
        return SagaCallResult(status=status, attempt=attempt, captured=self._captures(request, response))

    def _captures(self, request: SagaCallInput, response: httpx.Response) -> dict[str, Any]:
        capture = request.call.capture
        if not capture:
            return {}
        document, problem = _json_of(response)
        if problem is not None:
            raise _failure(f"cannot capture {sorted(capture)}: {problem}", CAPTURE_FAILED, final=True)
        try:
            return {name: JsonPath.parse(path).find(document) for name, path in capture.items()}
        except PathNotFoundError as exc:
            raise _failure(f"cannot capture from the response: {exc}", CAPTURE_FAILED, final=True) from None

    async def _kafka(self, request: SagaCallInput, kafka: KafkaCall) -> SagaCallResult:
        key = None if kafka.key is None else render_text(kafka.key, request.variables)
        value = json.dumps(render_json(kafka.value, request.variables)).encode()
        try:
            sent = await self.messages.send(
                kafka.topic,
                value,
                key=None if key is None else key.encode(),
                headers=[(IDEMPOTENCY_HEADER, request.idempotency_key.encode())],
            )
        except TimeoutError:
            message = f"publishing to {kafka.topic} timed out: is the broker up, and does the topic exist?"
            raise _failure(message, CALL_FAILED) from None
        except (KafkaError, OSError) as exc:
            raise _failure(f"publishing to {kafka.topic}: {type(exc).__name__}: {exc}", CALL_FAILED) from None
        return SagaCallResult(attempt=activity.info().attempt, partition=sent.partition, offset=sent.offset)


def _rendered(expect: Expectation | None, variables: Mapping[str, Any]) -> Expectation:
    """The expectation with placeholders in its expected values filled."""
    if expect is None:
        return Expectation()
    return Expectation(expect.status, {path: render_json(v, variables) for path, v in expect.json.items()})
