"""A real Prometheus for the tests: 1 s scrapes and rule evaluations, targets added as they come.

It scrapes its own exporter (job ``crucible-test``), whose gauges a test sets:
``crucible_test_value{name=…}`` for values to query, and ``crucible_test_alarm``, which makes the
alert ``CrucibleTestAlarm`` fire (``PrometheusServer.alarm``).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import httpx
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from crucible.core.prometheus import PrometheusClient, PromSample
from crucible.stack.process import ManagedProcess
from crucible.stack.prometheus import (
    INSTALL_HINT,
    ScrapeJob,
    prometheus_binary,
    prometheus_spec,
    wait_prometheus_ready,
    write_prometheus_config,
    write_targets,
)
from crucible.stack.services import free_port

ALARM = "CrucibleTestAlarm"
TEST_JOB = "crucible-test"
ALARM_RULES = f"""groups:
  - name: crucible-test
    rules:
      - alert: {ALARM}
        expr: crucible_test_alarm > 0
        for: 0s
        labels:
          severity: test
        annotations:
          summary: raised by a test through the crucible_test_alarm gauge
"""


def _quiet(_: str) -> None:
    """Prometheus' output goes to its log file only."""


class TestExporter:
    """Gauges a test sets, served over HTTP from this process for Prometheus to scrape."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.alarm = Gauge("crucible_test_alarm", "Above 0: CrucibleTestAlarm fires", registry=self.registry)
        self.values = Gauge("crucible_test_value", "Values set by tests", ["name"], registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> None:
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class PrometheusServer:
    folder: Path
    port: int
    exporter: TestExporter
    #: The static jobs it was launched with, besides its exporter's.
    jobs: Sequence[ScrapeJob] = ()
    process: ManagedProcess | None = None
    _targets: dict[str, set[str]] = field(default_factory=dict)
    _http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> PrometheusClient:
        return PrometheusClient(self._http, self.url)

    @classmethod
    async def launch(
        cls,
        folder: Path,
        *,
        jobs: Sequence[ScrapeJob] = (),
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 1.0,
    ) -> PrometheusServer:
        """Start the real binary on a free port, scraping its exporter and ``jobs``; returns once
        every target is up. It fails, never skips, when the binary is missing.

        Prometheus hands new targets to its scrapers every 5 s, so a target named here is up
        sooner than one added later with :meth:`add_target`.
        """
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError(f"the prometheus binary is missing; {INSTALL_HINT}")
        exporter = TestExporter()
        exporter.start()
        server = cls(folder, free_port(), exporter, jobs)
        try:
            (folder / "rules").mkdir(parents=True, exist_ok=True)
            (folder / "rules" / "crucible-test.yml").write_text(ALARM_RULES, encoding="utf-8")
            config = write_prometheus_config(
                folder,
                jobs=[ScrapeJob(TEST_JOB, [f"127.0.0.1:{exporter.port}"]), *jobs],
                scrape_interval_s=scrape_interval_s,
                evaluation_interval_s=evaluation_interval_s,
            )
            spec = prometheus_spec(
                binary=binary,
                config_path=config,
                port=server.port,
                data_dir=folder / "data",
                retention="1h",
                log_path=folder / "prometheus.log",
                restart=False,
            )
            server.process = ManagedProcess(spec, echo=_quiet)
            await server.process.start()
            await wait_prometheus_ready(server.url, timeout=30)
            await server.wait_target_up(TEST_JOB, f"127.0.0.1:{exporter.port}")
            for job in jobs:
                for address in job.targets:
                    await server.wait_target_up(job.name, address)
        except BaseException:
            await server.stop()
            raise
        return server

    async def add_target(self, job: str, address: str, *, timeout: float = 30) -> None:
        """Scrape ``address`` (``host:port``, path ``/metrics``) under ``job``; returns once it is up,
        which takes up to 5 s (see :meth:`launch`)."""
        self._targets.setdefault(job, set()).add(address)
        write_targets(self.folder, job, sorted(self._targets[job]))
        await self.wait_target_up(job, address, timeout=timeout)

    async def remove_target(self, job: str, address: str) -> None:
        self._targets.get(job, set()).discard(address)
        write_targets(self.folder, job, sorted(self._targets.get(job, set())))

    async def wait_target_up(self, job: str, address: str, *, timeout: float = 30) -> None:
        seen: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    answer = await self._http.get(f"{self.url}/api/v1/targets", params={"state": "active"})
                    seen = answer.json()["data"]["activeTargets"]
                    if any(
                        t["labels"].get("job") == job
                        and t["labels"].get("instance") == address
                        and t["health"] == "up"
                        for t in seen
                    ):
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            shown = [(t["labels"], t["health"], t.get("lastError")) for t in seen]
            raise AssertionError(f"Prometheus did not report {job} {address} up: {shown}") from None

    async def query(self, promql: str) -> list[PromSample]:
        return await self.client.instant(promql)

    async def wait_for(self, promql: str, *, timeout: float = 20) -> list[PromSample]:
        """The first non-empty answer to ``promql`` (its filters say what counts)."""
        try:
            async with asyncio.timeout(timeout):
                while not (samples := await self.query(promql)):
                    await asyncio.sleep(0.2)
                return samples
        except TimeoutError:
            raise AssertionError(f"{promql!r} gave no data within {timeout} s") from None

    async def set_value(self, name: str, value: float) -> None:
        """Set ``crucible_test_value{name=…}`` and wait until Prometheus has scraped it."""
        self.exporter.values.labels(name).set(value)
        selector = f'crucible_test_value{{name="{name}"}}'
        if math.isnan(value):  # NaN is the one value unequal to itself
            await self.wait_for(f"{selector} != {selector}")
        else:
            literal = repr(value) if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")
            await self.wait_for(f"{selector} == {literal}")

    @asynccontextmanager
    async def alarm(self, *, timeout: float = 20) -> AsyncIterator[None]:
        """``CrucibleTestAlarm`` fires for the block, and has stopped when the block is left."""
        firing = f'ALERTS{{alertname="{ALARM}",alertstate="firing"}}'
        self.exporter.alarm.set(1)
        try:
            await self.wait_for(firing, timeout=timeout)
            yield
        finally:
            self.exporter.alarm.set(0)
            async with asyncio.timeout(timeout):
                while await self.query(f'ALERTS{{alertname="{ALARM}"}}'):
                    await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(10)
            self.process = None
        self.exporter.stop()
        await self._http.aclose()
