"""The installation's target policy, from the settings, with the stack's own endpoints in it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from crucible.core.targets.policy import PolicyMode, StackEndpoint, TargetPolicy
from crucible.core.targets.transport import CachingResolver, guarded_client

if TYPE_CHECKING:
    from crucible.core.config import Settings


def _host_port(text: str, default_port: int) -> StackEndpoint | None:
    """``host:port``, ``[v6]:port`` or a URL, as an endpoint; None for a unix socket or nothing."""
    text = text.strip()
    if not text:
        return None
    parts = urlsplit(text if "//" in text else f"//{text}")
    try:
        port = parts.port or default_port
    except ValueError:
        return None
    return StackEndpoint(parts.hostname, port) if parts.hostname else None


def stack_endpoints(settings: Settings) -> tuple[StackEndpoint, ...]:
    """Crucible's own services, as the settings name them: runs may not call them.

    The API, Temporal (frontend, Web UI, metrics), PostgreSQL, Kafka, Prometheus, the chaos
    proxy's control API and the worker's metrics. The demo targets are not among them.
    """
    local = "127.0.0.1"
    found: list[StackEndpoint | None] = [
        StackEndpoint(settings.api_host, settings.api_port),
        _host_port(settings.effective_api_url, 80),
        _host_port(settings.effective_temporal_address, 7233),
        StackEndpoint(local, settings.temporal_ui_port),
        StackEndpoint(local, settings.temporal_metrics_port),
        _host_port(settings.effective_temporal_ui_url, 80),
        StackEndpoint(local, settings.postgres_port),
        StackEndpoint(local, settings.prometheus_port),
        StackEndpoint(local, settings.chaos_proxy_port),
    ]
    if settings.database_url is not None:
        found.append(_host_port(settings.database_url.get_secret_value(), 5432))
    found.extend(_host_port(server, 9092) for server in settings.effective_kafka_bootstrap_servers.split(","))
    for url in (settings.prometheus_url, settings.chaos_proxy_url):
        if url:
            found.append(_host_port(url, 80))
    for port in (settings.worker_metrics_port, settings.probe_metrics_port):
        if port:
            found.append(StackEndpoint("0.0.0.0", port))
    return tuple(dict.fromkeys(endpoint for endpoint in found if endpoint is not None))


def settings_mode(settings: Settings) -> PolicyMode:
    """``CRUCIBLE_TARGET_MODE``, else dev in dev mode and production otherwise."""
    if settings.target_mode:
        return PolicyMode(settings.target_mode)
    return PolicyMode.DEV if getattr(settings, "dev_mode", False) else PolicyMode.PRODUCTION


def policy_from_settings(settings: Settings) -> TargetPolicy:
    """The installation's policy: ``CRUCIBLE_TARGET_*`` and the stack's own endpoints."""
    return TargetPolicy.build(
        mode=settings_mode(settings),
        hosts=settings.target_hosts.split(","),
        networks=settings.target_networks.split(","),
        ports=settings.target_ports.split(","),
        include_defaults=settings.target_defaults,
        stack=stack_endpoints(settings),
    )


def client_from_settings(settings: Settings, **options: Any) -> httpx.AsyncClient:
    """The worker's guarded client: the installation's policy outside :func:`using_policy` blocks,
    host names cached for ``CRUCIBLE_TARGET_DNS_CACHE_S``. ``options`` go to ``httpx.AsyncClient``."""
    resolver = CachingResolver(ttl_s=settings.target_dns_cache_s)
    return guarded_client(policy_from_settings(settings), resolver=resolver, **options)
