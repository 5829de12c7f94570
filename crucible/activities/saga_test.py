"""A saga test's side effects outside Kafka: its trigger request, and its fault and rollback.

Every request carries ``Idempotency-Key: <run id>-<trigger|fault|rollback>``, the same on
every attempt, and the header values the test was given, opened from its secret here.
A fault's signal and its request are separate activities, so a retried request never
sends the signal again. A process is looked at (``inspect_process``) before it is signalled,
and signalled only while it is still that process (see :mod:`crucible.core.saga_tests.processes`).

Failures (``ApplicationError`` types):

- ``TriggerUnreachable``: the trigger got no answer (retried; the test then fails its
  ``trigger_accepted`` assertion). Any answer, 5xx included, is the test's to judge. A trigger
  URL the target policy refuses is one too, but final, and says so.
- ``FaultFailed``: a fault or rollback request got no answer or a 5xx (retried), or a 4xx or a
  refusal by the target policy (final).
- ``FaultRefused``: a process fault names a process the worker must not or cannot signal;
  the message says why (final).
- ``SecretsFailed``: the headers secret cannot be opened (final).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.http import EXCERPT_CHARS, IDEMPOTENCY_HEADER, REQUEST_ERRORS, excerpt
from crucible.core.saga_tests import processes
from crucible.core.saga_tests.models import (
    ROLLBACK,
    TRIGGER,
    FaultRequestInput,
    FaultRequestResult,
    InspectProcessInput,
    ProcessIdentity,
    RequestSpec,
    SignalProcessInput,
    SignalProcessResult,
    TriggerInput,
    TriggerResult,
)
from crucible.core.sagas.jsonpath import JsonPath, PathNotFoundError
from crucible.core.secrets import SecretStore, SecretsUnavailableError
from crucible.core.targets import TargetRefused

TRIGGER_UNREACHABLE = "TriggerUnreachable"
FAULT_FAILED = "FaultFailed"
FAULT_REFUSED = "FaultRefused"
SECRETS_FAILED = "SecretsFailed"


def captured_id(response: httpx.Response, path: str) -> tuple[str | None, str | None]:
    """The correlation id at ``path`` in the JSON response, or None and why not."""
    try:
        document = response.json()
    except ValueError:
        return None, f"the trigger's response is not JSON: {excerpt(response)!r}"
    try:
        value = JsonPath.parse(path).find(document)
    except PathNotFoundError as exc:
        return None, f"the trigger's response has {exc}"
    if value is None or isinstance(value, dict | list | bool):
        return None, f"{path} in the trigger's response is {json.dumps(value)[:EXCERPT_CHARS]}, not an id"
    return (value if isinstance(value, str) else json.dumps(value)), None


class SagaTestActivities:
    def __init__(
        self, secrets: SecretStore, client: httpx.AsyncClient, *, fault_processes: Sequence[str] = ()
    ) -> None:
        self.secrets = secrets
        self.client = client
        #: Markers one of which a process's command line must hold to be signalled; none: no process is.
        self.fault_processes = list(fault_processes)

    async def _headers(self, secret_id: str | None, role: str, run_id: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        if secret_id is not None:
            try:
                headers = dict((await self.secrets.get(secret_id)).get(role) or {})
            except SecretsUnavailableError as exc:
                raise ApplicationError(str(exc), type=SECRETS_FAILED, non_retryable=True) from None
        headers[IDEMPOTENCY_HEADER] = f"{run_id}-{role}"
        return headers

    async def _send(self, request: RequestSpec, headers: dict[str, str]) -> httpx.Response:
        return await self.client.request(
            request.method,
            request.url,
            headers=headers,
            content=None if request.body is None else json.dumps(request.body).encode(),
        )

    @activity.defn
    async def send_trigger(self, request: TriggerInput) -> TriggerResult:
        """Start the business flow; capture the correlation id from the response if asked to."""
        headers = await self._headers(request.headers_secret, TRIGGER, request.run_id)
        if request.request.body is not None:
            headers.setdefault("content-type", "application/json")
        started = time.perf_counter()
        try:
            response = await self._send(request.request, headers)
        except TargetRefused as exc:
            raise ApplicationError(
                f"{request.request.method} {request.request.url}: {exc.summary}",
                type=TRIGGER_UNREACHABLE,
                non_retryable=True,
            ) from None
        except REQUEST_ERRORS as exc:
            raise ApplicationError(
                f"{request.request.method} {request.request.url}: {type(exc).__name__}: {exc}",
                type=TRIGGER_UNREACHABLE,
            ) from None
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        correlation = problem = None
        if request.correlation_from is not None and response.is_success:
            correlation, problem = captured_id(response, request.correlation_from)
        return TriggerResult(response.status_code, elapsed_ms, correlation, problem)

    @activity.defn
    async def inspect_process(self, request: InspectProcessInput) -> ProcessIdentity:
        """Check that the fault's process may be signalled, and note when it started."""
        try:
            view = processes.read_process(request.pid)
            marker = processes.allowed_marker(view, self.fault_processes, processes.lineage())
        except processes.ProcessRefused as exc:
            raise ApplicationError(str(exc), type=FAULT_REFUSED, non_retryable=True) from None
        return ProcessIdentity(view.pid, view.started, marker)

    @activity.defn
    async def signal_process(self, request: SignalProcessInput) -> SignalProcessResult:
        """Signal the inspected process, unless the pid names another process now. A rollback
        to a process that has gone is no error: there is nothing left to put back."""
        process = request.process
        try:
            processes.signal_process(
                process.pid, request.signal, started=process.started, markers=self.fault_processes
            )
        except processes.ProcessGone as exc:
            if request.phase == ROLLBACK:
                return SignalProcessResult(False, f"{exc}; not signalled")
            raise ApplicationError(str(exc), type=FAULT_REFUSED, non_retryable=True) from None
        except processes.ProcessRefused as exc:
            raise ApplicationError(str(exc), type=FAULT_REFUSED, non_retryable=True) from None
        return SignalProcessResult(True)

    @activity.defn
    async def send_fault_request(self, request: FaultRequestInput) -> FaultRequestResult:
        """Send the fault's request, or its rollback's."""
        http = request.http
        headers = await self._headers(request.headers_secret, request.phase, request.run_id)
        if http.body is not None:
            headers.setdefault("content-type", "application/json")
        where = f"{request.phase} {http.method} {http.url}"
        try:
            response = await self._send(http, headers)
        except TargetRefused as exc:
            raise ApplicationError(f"{where}: {exc.summary}", type=FAULT_FAILED, non_retryable=True) from None
        except REQUEST_ERRORS as exc:
            raise ApplicationError(f"{where}: {type(exc).__name__}: {exc}", type=FAULT_FAILED) from None
        if not response.is_success:
            raise ApplicationError(
                f"{where} answered {response.status_code}: {excerpt(response)}",
                {"status": response.status_code},
                type=FAULT_FAILED,
                non_retryable=response.status_code < 500,
            )
        return FaultRequestResult(response.status_code)
