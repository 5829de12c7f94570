"""Prometheus as a supervised child: its config file, its command line, its readiness.

The binary is Debian's package ``prometheus`` (2.42 here). The config this module writes has
static scrape jobs, a folder of ``file_sd`` target files (``targets/<job>.json``) so targets
can be added while it runs, and every rule file in ``rules/*.yml`` beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from crucible.core.config import Settings
from crucible.stack.process import ProcessSpec
from crucible.stack.services import wait_until

#: Where Debian's package puts the binary, for a PATH without /usr/bin.
DEBIAN_BINARY = Path("/usr/bin/prometheus")
INSTALL_HINT = "install it with `apt-get install prometheus` (Debian's package) or `make test`"
CONFIG_FILE = "prometheus.yml"
TARGETS_DIR = "targets"
RULES_DIR = "rules"
#: The scrape job whose targets come from ``targets/*.json``; each file names its own ``job``.
FILE_SD_JOB = "crucible-targets"
DEFAULT_RETENTION = "2d"


def prometheus_binary() -> str | None:
    """The ``prometheus`` executable, or None when it is not installed."""
    found = shutil.which("prometheus")
    if found is not None:
        return found
    if DEBIAN_BINARY.is_file() and os.access(DEBIAN_BINARY, os.X_OK):
        return str(DEBIAN_BINARY)
    return None


@dataclass(frozen=True)
class ScrapeJob:
    """One static scrape job: ``host:port`` targets, scraped at ``metrics_path``."""

    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"


def _duration(seconds: float) -> str:
    """Seconds in Prometheus' duration syntax: ``5s``, ``500ms``."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"a Prometheus interval must be positive, not {seconds}")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def write_prometheus_config(
    folder: Path,
    *,
    jobs: Sequence[ScrapeJob] = (),
    scrape_interval_s: float = 5.0,
    evaluation_interval_s: float | None = None,
    rule_files: Sequence[Path] = (),
) -> Path:
    """Write ``folder/prometheus.yml`` and make its ``targets`` and ``rules`` folders.

    Targets written by :func:`write_targets` are scraped within about a second (Prometheus
    watches the folder). ``rule_files`` are loaded besides ``rules/*.yml``. The evaluation
    interval defaults to the scrape interval. Returns the config's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TARGETS_DIR).mkdir(exist_ok=True)
    (folder / RULES_DIR).mkdir(exist_ok=True)
    interval = _duration(scrape_interval_s)
    config = {
        "global": {
            "scrape_interval": interval,
            # The default 10 s timeout is longer than a short interval, which Prometheus refuses.
            "scrape_timeout": _duration(min(scrape_interval_s, 10.0)),
            "evaluation_interval": _duration(evaluation_interval_s or scrape_interval_s),
        },
        "rule_files": [str(folder / RULES_DIR / "*.yml"), *(str(path) for path in rule_files)],
        "scrape_configs": [
            *(
                {
                    "job_name": job.name,
                    "metrics_path": job.metrics_path,
                    "static_configs": [{"targets": list(job.targets)}],
                }
                for job in jobs
            ),
            {
                "job_name": FILE_SD_JOB,
                "file_sd_configs": [
                    {"files": [str(folder / TARGETS_DIR / "*.json")], "refresh_interval": interval}
                ],
            },
        ],
    }
    path = folder / CONFIG_FILE
    _replace(path, yaml.safe_dump(config, sort_keys=False))
    return path


def write_targets(
    folder: Path, job: str, addresses: Sequence[str], *, metrics_path: str = "/metrics"
) -> Path:
    """Scrape ``addresses`` (``host:port``) under the label ``job`` from now on; none: stop.

    The file is replaced whole, so a job's targets are what the last call named.
    """
    groups = [{"targets": list(addresses), "labels": {"job": job, "__metrics_path__": metrics_path}}]
    path = folder / TARGETS_DIR / f"{job}.json"
    _replace(path, json.dumps(groups if addresses else [], indent=2))
    return path


def _replace(path: Path, text: str) -> None:
    # Prometheus reads these files whenever they change; it must never see half of one.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prometheus_spec(
    *,
    binary: str,
    config_path: Path,
    port: int,
    data_dir: Path,
    retention: str = DEFAULT_RETENTION,
    log_path: Path | None = None,
    restart: bool = True,
) -> ProcessSpec:
    """Prometheus on ``127.0.0.1:port``, with ``POST /-/reload`` enabled and a short retention."""
    return ProcessSpec(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={data_dir}",
            f"--storage.tsdb.retention.time={retention}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        log_path=log_path,
        restart=restart,
    )


async def wait_prometheus_ready(url: str, *, timeout: float = 60) -> None:
    """Wait until ``/-/ready`` answers 200: the data is loaded and queries work."""

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            (await client.get(f"{url.rstrip('/')}/-/ready")).raise_for_status()

    await wait_until("Prometheus", probe, timeout=timeout, interval=0.2)


async def reload_prometheus(url: str) -> None:
    """Make Prometheus read its config and rule files again."""
    async with httpx.AsyncClient(timeout=10) as client:
        (await client.post(f"{url.rstrip('/')}/-/reload")).raise_for_status()


def dev_scrape_jobs(s: Settings, *, demo: bool, prometheus_port: int) -> list[ScrapeJob]:
    """What the dev stack's Prometheus scrapes: itself, the API, the worker and its steady
    probes, Temporal's server (when the stack runs it) and, with ``--demo``, the demo target."""
    local = "127.0.0.1"
    api_host = local if s.api_host in ("0.0.0.0", "::") else s.api_host
    jobs = [
        ScrapeJob("prometheus", [f"{local}:{prometheus_port}"]),
        ScrapeJob("crucible-api", [f"{api_host}:{s.api_port}"]),
        ScrapeJob("crucible-worker", [f"{local}:{s.worker_metrics_port}"]),
    ]
    if s.probe_metrics_port:  # 0: the worker picks a port no config can name
        jobs.append(ScrapeJob("crucible-probes", [f"{local}:{s.probe_metrics_port}"]))
    if s.temporal_address is None:
        jobs.append(ScrapeJob("temporal", [f"{local}:{s.temporal_metrics_port}"]))
    if demo:  # the shop's services serve no /metrics
        jobs.append(ScrapeJob("demo-target", [f"{local}:{s.demo_port}"]))
    return jobs
