"""What ``crucible dev`` runs for chaos experiments: Prometheus, when its binary is installed
and no Prometheus is configured, and the chaos proxy's control server, unless one is configured.

Prometheus keeps its data in ``$CRUCIBLE_HOME/prometheus`` and scrapes the API, the worker, the
worker's steady probes, Temporal's server and, with ``--demo``, the demo target.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from crucible.core.config import Settings
from crucible.stack.process import ProcessSpec
from crucible.stack.prometheus import (
    INSTALL_HINT,
    dev_scrape_jobs,
    prometheus_binary,
    prometheus_spec,
    wait_prometheus_ready,
    write_prometheus_config,
)
from crucible.stack.services import wait_until

log = logging.getLogger("crucible.stack")

#: How often the dev stack's Prometheus scrapes its targets and evaluates rules.
DEV_SCRAPE_INTERVAL_S = 5.0

StartProcess = Callable[[ProcessSpec], Awaitable[object]]


def runs_prometheus(s: Settings) -> bool:
    """Whether the stack starts Prometheus: none is configured and the binary is installed."""
    return s.prometheus_url is None and prometheus_binary() is not None


def prometheus_url(s: Settings) -> str | None:
    """The Prometheus the stack's processes query: the configured one, or the stack's own."""
    return f"http://127.0.0.1:{s.prometheus_port}" if runs_prometheus(s) else s.prometheus_url


def chaos_proxy_url(s: Settings) -> str:
    return s.chaos_proxy_url or f"http://127.0.0.1:{s.chaos_proxy_port}"


def chaos_ports(s: Settings) -> list[tuple[int, str, str]]:
    """(port, what, setting) of every chaos part the stack starts, to check they are free."""
    wanted = []
    if s.probe_metrics_port:
        wanted.append((s.probe_metrics_port, "the steady probes' metrics", "CRUCIBLE_PROBE_METRICS_PORT"))
    if runs_prometheus(s):
        wanted.append((s.prometheus_port, "Prometheus", "CRUCIBLE_PROMETHEUS_PORT"))
    if s.chaos_proxy_url is None:
        wanted.append((s.chaos_proxy_port, "the chaos proxy", "CRUCIBLE_CHAOS_PROXY_PORT"))
    return wanted


def chaos_env(s: Settings) -> dict[str, str]:
    """What the stack's processes need to reach Prometheus and the chaos proxy."""
    env = {"CRUCIBLE_CHAOS_PROXY_URL": chaos_proxy_url(s)}
    url = prometheus_url(s)
    if url is not None:
        env["CRUCIBLE_PROMETHEUS_URL"] = url
    return env


def chaos_parts(
    s: Settings, *, home: Path, logs: Path, demo: bool, start: StartProcess
) -> list[Coroutine[Any, Any, None]]:
    """The start-ups to run beside the other infrastructure; says so when Prometheus is missing."""
    parts = []
    if runs_prometheus(s):
        parts.append(_start_prometheus(s, home=home, logs=logs, demo=demo, start=start))
    elif s.prometheus_url is None:
        log.info("chaos SLO queries need Prometheus, which is not installed; %s", INSTALL_HINT)
    if s.chaos_proxy_url is None:
        parts.append(_start_chaos_proxy(s, logs=logs, start=start))
    return parts


async def _start_prometheus(s: Settings, *, home: Path, logs: Path, demo: bool, start: StartProcess) -> None:
    binary = prometheus_binary()
    assert binary is not None
    folder = home / "prometheus"
    config = write_prometheus_config(
        folder,
        jobs=dev_scrape_jobs(s, demo=demo, prometheus_port=s.prometheus_port),
        scrape_interval_s=DEV_SCRAPE_INTERVAL_S,
    )
    await start(
        prometheus_spec(
            binary=binary,
            config_path=config,
            port=s.prometheus_port,
            data_dir=folder / "data",
            log_path=logs / "prometheus.log",
        )
    )
    await wait_prometheus_ready(f"http://127.0.0.1:{s.prometheus_port}")


async def _start_chaos_proxy(s: Settings, *, logs: Path, start: StartProcess) -> None:
    argv = [
        sys.executable,
        "-m",
        "crucible.chaos_proxy",
        "--host",
        "127.0.0.1",
        "--port",
        str(s.chaos_proxy_port),
    ]
    await start(ProcessSpec(name="chaos", argv=argv, log_path=logs / "chaos-proxy.log"))
    health = f"{chaos_proxy_url(s)}/health"

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            (await client.get(health)).raise_for_status()

    await wait_until("the chaos proxy", probe, timeout=30, interval=0.2)


def chaos_banner(s: Settings) -> list[str]:
    url = prometheus_url(s)
    return [
        f"  Prometheus     {url}" if url else "  Prometheus     not installed; chaos SLO queries need it",
        f"  Chaos proxy    {chaos_proxy_url(s)}  (control API)",
    ]


#: The chaos proxy ``crucible dev --demo`` puts in front of the demo target.
DEMO_PROXY = "demo"


async def create_demo_proxy(s: Settings) -> None:
    """Put the proxy ``demo`` in front of the demo target (creating it again is harmless)."""
    body = {
        "name": DEMO_PROXY,
        "listen": f"127.0.0.1:{s.demo_proxy_port}",
        "upstream": f"127.0.0.1:{s.demo_port}",
    }
    async with httpx.AsyncClient(timeout=10) as client:
        (await client.post(f"{chaos_proxy_url(s)}/proxies", json=body)).raise_for_status()
