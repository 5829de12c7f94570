"""Activities for chaos ``kubernetes`` faults: delete pods, then wait for their replacements.

They speak to the API server through the official client (`kubernetes`), whose calls block, so
each runs in a thread. `ChaosKubernetesActivities.delete_pods` deletes ``count`` Running pods
matching a label selector, chosen by name; the fault's rollback is
`ChaosKubernetesActivities.await_pods_ready`: the controller that owns the pods (a ReplicaSet,
say) replaces them, and the rollback waits until as many pods are Ready as were before.

Retries are safe. A deletion records its choice in its heartbeat before deleting, and a retry
deletes the same pods (one already gone, 404, is fine); a retry that finds no heartbeat
prefers pods already being deleted, so it does not add victims while they terminate. A
wait's retry keeps the first attempt's start, so ``ready_timeout_s`` bounds the whole wait.

Errors (`ApplicationError` types):

- ``KubernetesAccessDenied`` (non-retryable): 401 or 403, with the API server's reason;
- ``KubernetesRequestInvalid`` (non-retryable): any other 4xx, or a kubeconfig that cannot be used;
- ``KubernetesUnavailable`` (retried): no answer, a timeout, a 5xx or a 429;
- ``PodDeleteRefused`` (non-retryable): fewer Running pods match than ``count``;
- ``PodsNotRecovered`` (non-retryable): too few pods Ready after ``ready_timeout_s``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.chaos.faults import number_error
from crucible.core.errors import FieldError, InvalidRequestError

KUBERNETES_ACCESS_DENIED = "KubernetesAccessDenied"
KUBERNETES_REQUEST_INVALID = "KubernetesRequestInvalid"
KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"
POD_DELETE_REFUSED = "PodDeleteRefused"
PODS_NOT_RECOVERED = "PodsNotRecovered"
#: (connect, read) seconds for one API call.
DEFAULT_REQUEST_TIMEOUT = (5.0, 30.0)
DEFAULT_POLL_INTERVAL_S = 1.0
PARAMS_LOC: tuple[str | int, ...] = ("body", "fault", "params")


@dataclass
class PodDeleteParams:
    label_selector: str
    namespace: str = "default"
    #: How many pods to delete.
    count: int = 1
    grace_period_s: int = 0
    #: How long the rollback waits for the replacements to be Ready.
    ready_timeout_s: float = 120.0


@dataclass
class PodDeleteInput:
    run_id: str
    params: PodDeleteParams


@dataclass
class PodDeleteResult:
    deleted: list[str]
    #: Pods matching the selector that were Ready before the deletion.
    replicas_before: int


@dataclass
class PodsReadyInput:
    run_id: str
    params: PodDeleteParams
    #: From `PodDeleteResult`; None (the deletion's result is unknown): every pod matching must be
    #: Ready, and at least one must exist.
    replicas_before: int | None = None


@dataclass
class PodsReadyResult:
    ready: int
    waited_s: float


def pod_params_from_dict(
    data: Mapping[str, Any], *, loc: tuple[str | int, ...] = PARAMS_LOC
) -> PodDeleteParams:
    """A fault's ``params`` as `PodDeleteParams`; `InvalidRequestError` naming every wrong field."""
    errors = [
        FieldError((*loc, name), "unknown parameter", "extra_forbidden")
        for name in data
        if name not in PodDeleteParams.__dataclass_fields__
    ]

    def text(name: str, default: str | None) -> str:
        value = data.get(name, default)
        if isinstance(value, str) and value.strip():
            return value.strip()
        errors.append(FieldError((*loc, name), "a non-empty string is required", "missing"))
        return ""

    def number(name: str, default: float, minimum: float, *, integer: bool) -> Any:
        value = data.get(name, default)
        error = number_error((*loc, name), value, minimum=minimum, integer=integer)
        if error is None:
            return value
        errors.append(error)
        return default

    params = PodDeleteParams(
        label_selector=text("label_selector", None),
        namespace=text("namespace", "default"),
        count=int(number("count", 1, 1, integer=True)),
        grace_period_s=int(number("grace_period_s", 0, 0, integer=True)),
        ready_timeout_s=float(number("ready_timeout_s", 120.0, 0, integer=False)),
    )
    if errors:
        raise InvalidRequestError(errors)
    return params


class ChaosKubernetesActivities:
    """Pod faults through one API client, built on first use.

    ``kubeconfig`` None: the in-cluster service account, else the default kubeconfig
    (``$KUBECONFIG`` or ``~/.kube/config``).
    """

    def __init__(self, kubeconfig: Path | None, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> None:
        self.kubeconfig = kubeconfig
        self.poll_interval_s = poll_interval_s
        self._core: client.CoreV1Api | None = None

    @activity.defn
    async def delete_pods(self, request: PodDeleteInput) -> PodDeleteResult:
        """Delete ``count`` Running pods matching the selector, the same ones on every retry."""
        params = request.params
        earlier = _earlier(activity.info().heartbeat_details, "deleted")
        if earlier is not None:
            chosen, before = list(earlier["deleted"]), int(earlier["replicas_before"])
        else:
            pods = await self._list(params)
            chosen, before = choose_pods(pods, params, retry=activity.info().attempt > 1)
            activity.heartbeat({"deleted": chosen, "replicas_before": before})
        core = await self._api()
        for name in chosen:
            await self._call(
                f"delete pod {params.namespace}/{name}",
                core.delete_namespaced_pod,
                name,
                params.namespace,
                grace_period_seconds=params.grace_period_s,
                missing_ok=True,
            )
        return PodDeleteResult(chosen, before)

    @activity.defn
    async def await_pods_ready(self, request: PodsReadyInput) -> PodsReadyResult:
        """Wait until as many pods as before match the selector and are Ready."""
        params = request.params
        earlier = _earlier(activity.info().heartbeat_details, "since")
        since = float(earlier["since"]) if earlier is not None else time.time()
        while True:
            pods = await self._list(params)
            live = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
            ready = sum(1 for pod in live if is_ready(pod))
            wanted = request.replicas_before if request.replicas_before is not None else max(1, len(live))
            waited = time.time() - since
            if ready >= wanted:
                return PodsReadyResult(ready, round(waited, 3))
            if waited >= params.ready_timeout_s:
                raise ApplicationError(
                    f"{ready} of {wanted} pods matching {params.label_selector!r} in namespace "
                    f"{params.namespace!r} are Ready after {params.ready_timeout_s:g}s",
                    type=PODS_NOT_RECOVERED,
                    non_retryable=True,
                )
            activity.heartbeat({"since": since, "ready": ready, "wanted": wanted})
            await asyncio.sleep(min(self.poll_interval_s, max(0.0, params.ready_timeout_s - waited)))

    async def _list(self, params: PodDeleteParams) -> list[Any]:
        core = await self._api()
        found = await self._call(
            f"list pods {params.label_selector!r} in namespace {params.namespace!r}",
            core.list_namespaced_pod,
            params.namespace,
            label_selector=params.label_selector,
        )
        return list(found.items)

    async def _api(self) -> client.CoreV1Api:
        if self._core is None:
            try:
                api_client = await asyncio.to_thread(_api_client, self.kubeconfig)
            except (ConfigException, OSError, ValueError) as exc:
                raise ApplicationError(
                    f"cannot configure the Kubernetes client: {exc}",
                    type=KUBERNETES_REQUEST_INVALID,
                    non_retryable=True,
                ) from None
            self._core = client.CoreV1Api(api_client)
        return self._core

    async def _call(
        self, what: str, method: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        try:
            return await asyncio.to_thread(method, *args, _request_timeout=DEFAULT_REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise _api_error(what, exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApplicationError(
                f"Kubernetes API did not answer ({what}): {type(exc).__name__}: {exc}",
                type=KUBERNETES_UNAVAILABLE,
            ) from None


def choose_pods(pods: Sequence[Any], params: PodDeleteParams, *, retry: bool) -> tuple[list[str], int]:
    """The names of the pods to delete, and how many pods were Ready before.

    The first ``count`` Running pods by name. On a retry that lost its heartbeat, pods already
    being deleted are taken first: they are most likely the ones an earlier attempt chose.
    """
    dying = sorted(pod.metadata.name for pod in pods if pod.metadata.deletion_timestamp is not None)
    live = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
    running = sorted(
        pod.metadata.name for pod in live if pod.status is not None and pod.status.phase == "Running"
    )
    ready = sum(1 for pod in live if is_ready(pod))
    candidates = [*dying, *running] if retry else running
    if len(candidates) < params.count:
        raise ApplicationError(
            f"{len(candidates)} Running pods match {params.label_selector!r} in namespace "
            f"{params.namespace!r}; the fault deletes {params.count}",
            type=POD_DELETE_REFUSED,
            non_retryable=True,
        )
    chosen = candidates[: params.count]
    return chosen, ready + sum(1 for name in chosen if name in dying)


def is_ready(pod: Any) -> bool:
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or ())


def _earlier(details: Sequence[Any], key: str) -> Mapping[str, Any] | None:
    """The last heartbeat of an earlier attempt, if it recorded ``key``."""
    last = details[-1] if details else None
    return last if isinstance(last, Mapping) and key in last else None


def _api_client(kubeconfig: Path | None) -> client.ApiClient:
    if kubeconfig is not None:
        return config.new_client_from_config(config_file=str(kubeconfig))
    try:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except ConfigException:
        return config.new_client_from_config()


def _api_error(what: str, exc: ApiException) -> ApplicationError:
    status = exc.status or 0
    reason = _status_message(exc)
    message = f"Kubernetes API answered {status} ({what}): {reason}"
    if status in (401, 403):
        return ApplicationError(message, type=KUBERNETES_ACCESS_DENIED, non_retryable=True)
    if status == 0 or status == 429 or status >= 500:
        return ApplicationError(message, type=KUBERNETES_UNAVAILABLE)
    return ApplicationError(message, type=KUBERNETES_REQUEST_INVALID, non_retryable=True)


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status object, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "no reason given")
