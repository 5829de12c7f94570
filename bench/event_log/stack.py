"""The parts the benchmark runs against, each a child process on a free loopback port.

PostgreSQL, the Kafka broker and the Temporal dev server (in memory) start the way
``crucible dev`` starts them; the worker (:mod:`bench.event_log.worker`) and the API
(``python -m crucible api``) run as processes of their own, so that their memory and
CPU time can be read from ``/proc``. Everything stops when the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.event_log.worker import READY_LINE
from crucible.core import migrate
from crucible.core.auth.bootstrap import bootstrap_dev
from crucible.core.config import environment
from crucible.core.db import create_engine
from crucible.stack.process import ManagedProcess, ProcessSpec
from crucible.stack.services import (
    EmbeddedPostgres,
    StackError,
    broker_spec,
    free_port,
    temporal_spec,
    wait_kafka_ready,
    wait_temporal_ready,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "default"
TOPIC = "crucible.events"
TASK_QUEUE = "crucible-bench"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10


def _quiet(_: str) -> None:
    """Child output goes to its log file in the work folder only."""


@dataclass
class BenchStack:
    workdir: Path
    postgres: EmbeddedPostgres
    temporal_address: str
    kafka_bootstrap: str
    api_url: str
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    #: The dev admin's API token, once the database is up: every API call signs in with it.
    api_headers: dict[str, str] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        """libpq URL of the database, for psycopg."""
        return self.postgres.url(driver="postgresql")

    def pid(self, name: str) -> int:
        pid = self.processes[name].pid
        if pid is None or not self.processes[name].running:
            raise StackError(f"{name} is not running; see {self.workdir / (name + '.log')}")
        return pid

    async def _start(self, spec: ProcessSpec) -> None:
        process = ManagedProcess(spec, echo=_quiet)
        self.processes[spec.name] = process
        await process.start()

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.prepare)
        await self._start(self.postgres.spec(log_path=self.workdir / "postgres.log", restart=False))
        await self.postgres.wait_ready(timeout=READY_TIMEOUT_S)
        await asyncio.to_thread(migrate.upgrade, self.postgres.url())
        engine = create_engine(self.postgres.url())
        try:
            account = await bootstrap_dev(engine, self.workdir / "home")
        finally:
            await engine.dispose()
        self.api_headers = {"Authorization": f"Bearer {account.token}"}

    async def start_kafka(self, port: int) -> None:
        await self._start(broker_spec(port=port, log_path=self.workdir / "kafka.log", restart=False))
        await wait_kafka_ready(self.kafka_bootstrap, topic=TOPIC, timeout=READY_TIMEOUT_S)

    async def start_temporal(self, port: int) -> None:
        spec = temporal_spec(
            port=port,
            ui_port=free_port(),
            metrics_port=free_port(),
            db_file=None,  # in memory, as the figures in DESIGN.md were measured
            namespace=NAMESPACE,
            log_path=self.workdir / "temporal.log",
            restart=False,
        )
        spec.argv.append("--headless")
        await self._start(spec)
        await wait_temporal_ready(self.temporal_address, NAMESPACE, timeout=READY_TIMEOUT_S)

    def app_env(self) -> dict[str, str]:
        """What the worker and the API are told, as ``crucible dev`` tells them."""
        return {
            **environment(),
            "CRUCIBLE_HOME": str(self.workdir / "home"),
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": NAMESPACE,
            "DATABASE_URL": self.postgres.url(),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "CRUCIBLE_KAFKA_EVENTS_TOPIC": TOPIC,
            # The embedded broker rejects InitProducerId (see DESIGN.md).
            "CRUCIBLE_KAFKA_IDEMPOTENCE": "false",
            "CRUCIBLE_TASK_QUEUE": TASK_QUEUE,
            "CRUCIBLE_LOG_LEVEL": "WARNING",
            # As `crucible dev` runs them: the API signs its own tokens, targets on loopback
            # are allowed, and no team quota gets in the way of a benchmark's runs.
            "CRUCIBLE_DEV_MODE": "true",
            "CRUCIBLE_QUOTA_CONCURRENT_RUNS": "",
            "CRUCIBLE_QUOTA_RUNS_PER_DAY": "",
        }

    def more_parts(self) -> list[Coroutine[Any, Any, None]]:
        """Parts a kind of bench adds, started with the infrastructure; none here."""
        return []

    async def start_worker(
        self,
        argv: list[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        ready_line: str = READY_LINE,
    ) -> None:
        """The worker process (the bench's own unless ``argv`` says otherwise), once it polls."""
        ready = asyncio.Event()

        def watch(line: str) -> None:
            if ready_line in line:
                ready.set()

        spec = ProcessSpec(
            name="worker",
            argv=argv or [sys.executable, "-m", "bench.event_log.worker"],
            env={**self.app_env(), "CRUCIBLE_WORKER_SHUTDOWN_GRACE_S": "2", **(env or {})},
            cwd=REPO_ROOT,
            log_path=self.workdir / "worker.log",
            echo=True,
            restart=False,
        )
        process = ManagedProcess(spec, echo=watch)
        self.processes["worker"] = process
        await process.start()

        async def polling() -> None:
            if not process.running:
                raise StackError("the worker exited: " + " | ".join(process.tail))
            if not ready.is_set():
                raise StackError("not polling yet")

        await wait_until("the worker", polling, timeout=READY_TIMEOUT_S, interval=0.1)

    async def start_api(self, port: int) -> None:
        await self._start(
            ProcessSpec(
                name="api",
                argv=[sys.executable, "-m", "crucible", "api"],
                env={**self.app_env(), "CRUCIBLE_API_HOST": "127.0.0.1", "CRUCIBLE_API_PORT": str(port)},
                cwd=REPO_ROOT,
                log_path=self.workdir / "api.log",
                restart=False,
            )
        )

        async with httpx.AsyncClient(base_url=self.api_url, timeout=5) as http:

            async def healthy() -> None:
                (await http.get("/healthz")).raise_for_status()

            await wait_until("the API", healthy, timeout=READY_TIMEOUT_S, interval=0.2)

    async def stop(self) -> None:
        """The app tier first, then the infrastructure; whatever is late is killed."""
        for names in (("worker", "api"), ("temporal", "kafka", "postgres")):
            running = [self.processes[name] for name in names if name in self.processes]
            await asyncio.gather(*(process.stop(STOP_TIMEOUT_S) for process in running))


@contextlib.asynccontextmanager
async def running_stack(
    workdir: Path, *, durable_postgres: bool = False, stack_type: type[BenchStack] = BenchStack, **fields: Any
) -> AsyncIterator[BenchStack]:
    """Start every part in ``workdir`` and stop them all on exit, whatever happened.

    ``stack_type`` (with its own ``fields``) may add parts: see :meth:`BenchStack.more_parts`.
    """
    pg_port, kafka_port, temporal_port, api_port = (free_port() for _ in range(4))
    stack = stack_type(
        workdir=workdir,
        postgres=EmbeddedPostgres(workdir / "pgdata", port=pg_port, durable=durable_postgres),
        temporal_address=f"127.0.0.1:{temporal_port}",
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        api_url=f"http://127.0.0.1:{api_port}",
        **fields,
    )
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    try:
        # A task group, so that one part failing to start cancels the others' starts.
        async with asyncio.TaskGroup() as group:
            group.create_task(stack.start_postgres())
            group.create_task(stack.start_kafka(kafka_port))
            group.create_task(stack.start_temporal(temporal_port))
            for part in stack.more_parts():
                group.create_task(part)
        async with asyncio.TaskGroup() as group:
            group.create_task(stack.start_worker())
            group.create_task(stack.start_api(api_port))
        yield stack
    finally:
        await stack.stop()
