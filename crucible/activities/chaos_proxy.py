"""Activities that put faults in place on a chaos proxy process, and take them away.

The proxy (``python -m crucible.chaos_proxy``) runs outside the worker, so a fault
outlives a worker crash until `ChaosProxyActivities.roll_back_proxy_fault` removes it.
Both activities are idempotent by construction: injecting is a PUT that replaces the
fault of that name, rolling back is a DELETE that succeeds when nothing is there.

A fault the proxy refuses, or a proxy that does not exist when injecting, is a business
failure (non-retryable `ApplicationError`); an unreachable proxy or a 5xx is retried.

The proxy ``CRUCIBLE_CHAOS_PROXY_URL`` names is the operator's, one of the stack's own
services, and is called directly. Any other control URL is one the experiment names: it goes
through the guarded client, and a refusal by the target policy is final (``TargetRefused``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.targets import TARGET_REFUSED, TargetRefused

PROXY_FAULT_INVALID = "ProxyFaultInvalid"
PROXY_NOT_FOUND = "ProxyNotFound"
PROXY_UNAVAILABLE = "ProxyUnavailable"
DEFAULT_CONTROL_TIMEOUT = httpx.Timeout(10.0)


@dataclass
class InjectProxyFaultInput:
    """Put ``fault`` (a `fault_to_dict` object) in place as ``fault_name`` on ``proxy``."""

    control_url: str
    proxy: str
    fault_name: str
    fault: dict[str, Any] = field(default_factory=dict)


@dataclass
class RollBackProxyFaultInput:
    """Take ``fault_name`` away from ``proxy``; with no name, every fault on it."""

    control_url: str
    proxy: str
    fault_name: str = ""


@dataclass
class ProxyFaultResult:
    proxy: str
    fault_name: str
    #: Whether the fault is in place now: True after injecting, False after rolling back.
    in_place: bool


class ChaosProxyActivities:
    """Talks to chaos proxy control APIs through one pooled client.

    Args:
        client: for the configured proxy (``configured_url``), and for every proxy without ``targets``.
        targets: the guarded client, for control URLs other than the configured one.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        targets: httpx.AsyncClient | None = None,
        configured_url: str | None = None,
    ) -> None:
        self.client = client
        self.targets = targets
        self.configured = _origin(configured_url) if configured_url else None

    @activity.defn
    async def inject_proxy_fault(self, request: InjectProxyFaultInput) -> ProxyFaultResult:
        url = _faults_url(request.control_url, request.proxy, request.fault_name)
        response = await self._send("PUT", url, json=request.fault)
        if response.status_code == 404:
            raise ApplicationError(
                f"chaos proxy has no proxy {request.proxy!r}", type=PROXY_NOT_FOUND, non_retryable=True
            )
        if response.status_code == 422:
            raise ApplicationError(
                f"chaos proxy refused fault {request.fault_name!r}",
                response.json().get("detail"),
                type=PROXY_FAULT_INVALID,
                non_retryable=True,
            )
        _raise_for_status(response)
        return ProxyFaultResult(request.proxy, request.fault_name, in_place=True)

    @activity.defn
    async def roll_back_proxy_fault(self, request: RollBackProxyFaultInput) -> ProxyFaultResult:
        url = _faults_url(request.control_url, request.proxy, request.fault_name)
        response = await self._send("DELETE", url)
        # A proxy that is gone carries no fault: the rollback has nothing left to do.
        if response.status_code != 404:
            _raise_for_status(response)
        return ProxyFaultResult(request.proxy, request.fault_name, in_place=False)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = self.client
        if self.targets is not None and (self.configured is None or _origin(url) != self.configured):
            client = self.targets  # a control URL the experiment names
        try:
            return await client.request(method, url, timeout=DEFAULT_CONTROL_TIMEOUT, **kwargs)
        except TargetRefused as exc:
            raise ApplicationError(
                f"chaos proxy control URL: {exc.summary}", type=TARGET_REFUSED, non_retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"chaos proxy did not answer {method} {url}: {type(exc).__name__}", type=PROXY_UNAVAILABLE
            ) from None


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return None
    return parsed.scheme, parsed.host.lower(), parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)


def _faults_url(control_url: str, proxy: str, fault_name: str) -> str:
    base = f"{control_url.rstrip('/')}/proxies/{quote(proxy, safe='')}/faults"
    return f"{base}/{quote(fault_name, safe='')}" if fault_name else base


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_server_error:
        raise ApplicationError(
            f"chaos proxy answered {response.status_code}: {response.text[:200]}", type=PROXY_UNAVAILABLE
        )
    if response.is_error:
        raise ApplicationError(
            f"chaos proxy answered {response.status_code}: {response.text[:200]}",
            type=PROXY_FAULT_INVALID,
            non_retryable=True,
        )
