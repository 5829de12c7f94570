"""``crucible dev``: the whole stack on one machine, supervised, in the foreground.

Start order: PostgreSQL, the Kafka broker, the Temporal dev server, Prometheus (when its
binary is installed) and the chaos proxy (together, each unless configured to use an
existing one), then the migrations, then the worker and the API. Stop order is the
reverse, within 10 seconds in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx

from crucible.core import migrate
from crucible.core.auth.bootstrap import DEV_PASSWORD_FILE, DevAccount, bootstrap_dev
from crucible.core.config import Settings, environment
from crucible.core.db import create_engine
from crucible.core.secrets import new_key
from crucible.stack.chaos import chaos_banner, chaos_env, chaos_parts, chaos_ports, create_demo_proxy
from crucible.stack.demo import check_examples, demo_banner, demo_ports, demo_specs, wait_demo_ready
from crucible.stack.process import ManagedProcess, ProcessSpec
from crucible.stack.services import (
    EmbeddedPostgres,
    StackError,
    broker_spec,
    ensure_port_free,
    temporal_spec,
    wait_kafka_ready,
    wait_temporal_ready,
    wait_until,
)

log = logging.getLogger("crucible.stack")

#: The dev worker's grace for in-flight activities, so the whole stack stops in 10 s:
#: at most APP_STOP_S + INFRA_STOP_S + 2 * PUMP_DRAIN_S (0.3 s) = 9.6 s.
DEV_WORKER_GRACE_S = 4
APP_STOP_S = 5.0
INFRA_STOP_S = 4.0

SECRETS_KEY_FILE = "secrets.key"


@dataclass
class DevStack:
    settings: Settings
    echo: bool = True
    demo: bool = False
    app_processes: list[ManagedProcess] = field(default_factory=list)
    infra_processes: list[ManagedProcess] = field(default_factory=list)
    account: DevAccount | None = None
    _lock_file: IO[str] | None = None

    @property
    def home(self) -> Path:
        return self.settings.home_dir

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def _lock(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        lock_file = (self.home / "dev.lock").open("a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise StackError(
                f"{self.home} is in use by a running `crucible dev` ({holder}); "
                "stop it first, or set CRUCIBLE_HOME to another folder"
            ) from exc
        lock_file.truncate(0)
        lock_file.write(f"pid {os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file

    def _check_ports(self) -> None:
        s = self.settings
        wanted = [
            (s.api_port, "the API", "CRUCIBLE_API_PORT"),
            (s.worker_metrics_port, "the worker's metrics", "CRUCIBLE_WORKER_METRICS_PORT"),
            *chaos_ports(s),
        ]
        if self.demo:
            wanted += demo_ports(s)
        if s.database_url is None:
            wanted.append((s.postgres_port, "PostgreSQL", "CRUCIBLE_POSTGRES_PORT"))
        if s.kafka_bootstrap_servers is None:
            wanted.append((s.kafka_port, "Kafka", "CRUCIBLE_KAFKA_PORT"))
        if s.temporal_address is None:
            wanted += [
                (s.temporal_port, "Temporal", "CRUCIBLE_TEMPORAL_PORT"),
                (s.temporal_ui_port, "the Temporal Web UI", "CRUCIBLE_TEMPORAL_UI_PORT"),
                (s.temporal_metrics_port, "Temporal metrics", "CRUCIBLE_TEMPORAL_METRICS_PORT"),
            ]
        for port, what, setting in wanted:
            ensure_port_free(port, what=what, setting=setting)

    async def _start(self, spec: ProcessSpec, group: list[ManagedProcess]) -> ManagedProcess:
        process = ManagedProcess(spec)
        group.append(process)
        await process.start()
        return process

    async def _start_postgres(self) -> None:
        pg = EmbeddedPostgres(self.home / "postgres", port=self.settings.postgres_port)
        await asyncio.to_thread(pg.prepare)
        await self._start(pg.spec(log_path=self.logs / "postgres.log"), self.infra_processes)
        await pg.wait_ready()

    async def _start_kafka(self) -> None:
        s = self.settings
        await self._start(
            broker_spec(port=s.kafka_port, log_path=self.logs / "kafka.log"), self.infra_processes
        )
        await wait_kafka_ready(s.effective_kafka_bootstrap_servers, topic=s.kafka_events_topic)

    async def _start_temporal(self) -> None:
        s = self.settings
        spec = temporal_spec(
            port=s.temporal_port,
            ui_port=s.temporal_ui_port,
            metrics_port=s.temporal_metrics_port,
            db_file=self.home / "temporal.db",
            namespace=s.temporal_namespace,
            log_path=self.logs / "temporal.log",
            codec_endpoint=f"{s.effective_api_url}/codec",
        )
        await self._start(spec, self.infra_processes)
        await wait_temporal_ready(s.effective_temporal_address, s.temporal_namespace)

    async def _bootstrap_accounts(self) -> DevAccount:
        """The default organisation, team and admin, and a dev API token in $CRUCIBLE_HOME/dev-token."""
        engine = create_engine(self.settings.effective_database_url)
        try:
            return await bootstrap_dev(engine, self.home)
        finally:
            await engine.dispose()

    def secrets_key(self) -> str:
        """The configured key, or the stack's own, made once and kept in the state folder (0600)."""
        if self.settings.secrets_key is not None:
            return self.settings.secrets_key.get_secret_value()
        path = self.home / SECRETS_KEY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(new_key() + "\n")
        return path.read_text().strip()

    def stack_env(self) -> dict[str, str]:
        """The connection settings every process of this stack shares."""
        s = self.settings
        env = {
            "CRUCIBLE_HOME": str(self.home),
            "TEMPORAL_ADDRESS": s.effective_temporal_address,
            "TEMPORAL_NAMESPACE": s.temporal_namespace,
            "DATABASE_URL": s.effective_database_url,
            "KAFKA_BOOTSTRAP_SERVERS": s.effective_kafka_bootstrap_servers,
            "CRUCIBLE_KAFKA_EVENTS_TOPIC": s.kafka_events_topic,
            "CRUCIBLE_TEMPORAL_UI_URL": s.effective_temporal_ui_url,
            "CRUCIBLE_API_URL": s.effective_api_url,
            "CRUCIBLE_TASK_QUEUE": s.task_queue,
            "CRUCIBLE_SECRETS_KEY": self.secrets_key(),
            # The API makes and keeps its own signing secret in CRUCIBLE_HOME, for every process
            # of this stack, an API started by hand from stack.env included.
            "CRUCIBLE_DEV_MODE": "true",
            **chaos_env(s),
        }
        # The embedded broker rejects InitProducerId, so the idempotent producer is off for it.
        env["CRUCIBLE_KAFKA_IDEMPOTENCE"] = (
            "false" if s.kafka_bootstrap_servers is None else str(s.kafka_idempotence).lower()
        )
        return env

    def _write_stack_env(self, env: dict[str, str]) -> None:
        path = self.settings.stack_env_path
        tmp = path.with_suffix(".tmp")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        lines = [
            f"# Written by `crucible dev` (pid {os.getpid()}) at {stamp}.",
            "# A worker started with the same CRUCIBLE_HOME reads this file and joins the stack.",
            *(f"{key}={value}" for key, value in env.items()),
        ]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)

    async def start(self) -> None:
        self._lock()
        self._check_ports()
        self.logs.mkdir(parents=True, exist_ok=True)
        s = self.settings
        started = time.monotonic()
        parts = []
        if s.database_url is None:
            parts.append(self._start_postgres())
        if s.kafka_bootstrap_servers is None:
            parts.append(self._start_kafka())
        if s.temporal_address is None:
            parts.append(self._start_temporal())
        parts += chaos_parts(
            s,
            home=self.home,
            logs=self.logs,
            demo=self.demo,
            start=lambda spec: self._start(spec, self.infra_processes),
        )
        await asyncio.gather(*parts)
        log.info("infrastructure ready in %.1f s; migrating the database", time.monotonic() - started)
        await asyncio.to_thread(migrate.upgrade, s.effective_database_url)
        self.account = await self._bootstrap_accounts()

        env = self.stack_env()
        self._write_stack_env(env)
        child_env = {**environment(), **env, "CRUCIBLE_LOG_LEVEL": s.log_level}
        python = sys.executable
        await self._start(
            ProcessSpec(
                name="worker",
                argv=[python, "-m", "crucible", "worker"],
                env={
                    **child_env,
                    "CRUCIBLE_WORKER_SHUTDOWN_GRACE_S": str(DEV_WORKER_GRACE_S),
                    "CRUCIBLE_WORKER_METRICS_PORT": str(s.worker_metrics_port),
                    "CRUCIBLE_PROBE_METRICS_PORT": str(s.probe_metrics_port),
                },
                log_path=self.logs / "worker.log",
                echo=self.echo,
            ),
            self.app_processes,
        )
        await self._start(
            ProcessSpec(
                name="api",
                argv=[python, "-m", "crucible", "api"],
                env={
                    **child_env,
                    "CRUCIBLE_API_PORT": str(s.api_port),
                    "CRUCIBLE_API_HOST": s.api_host,
                },
                log_path=self.logs / "api.log",
                echo=self.echo,
            ),
            self.app_processes,
        )
        if self.demo:
            await self._start_demo(child_env)
        await self.wait_healthy()
        log.info("stack ready in %.1f s", time.monotonic() - started)

    async def _start_demo(self, env: dict[str, str]) -> None:
        check_examples()
        for spec in demo_specs(self.settings, env, self.logs, echo=self.echo):
            await self._start(spec, self.app_processes)
        await wait_demo_ready(self.settings)
        await create_demo_proxy(self.settings)

    async def wait_healthy(self, timeout: float = 60) -> None:
        url = f"{self.settings.effective_api_url}/healthz"

        async def probe() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                (await client.get(url)).raise_for_status()

        await wait_until("the API", probe, timeout=timeout, interval=0.5)

    async def stop(self) -> None:
        """Stop the app tier, then the infrastructure; kill whatever is late."""
        await asyncio.gather(*(p.stop(APP_STOP_S) for p in reversed(self.app_processes)))
        await asyncio.gather(*(p.stop(INFRA_STOP_S) for p in reversed(self.infra_processes)))
        if self._lock_file is not None:  # only the stack that wrote stack.env removes it
            with contextlib.suppress(FileNotFoundError):
                self.settings.stack_env_path.unlink()
            self._lock_file.close()
            self._lock_file = None

    def _account_lines(self, api: str) -> list[str]:
        account = self.account
        if account is None:
            return []
        return [
            f"  Dev admin      {account.email}  (password in {self.home / DEV_PASSWORD_FILE})",
            f"  Dev token      {account.token_path}  (the CLI uses it; or CRUCIBLE_TOKEN)",
            f'                 try: curl -H "Authorization: Bearer $(cat {account.token_path})" '
            f"{api}/api/v1/tokens",
        ]

    def banner(self) -> str:
        s = self.settings
        api = s.effective_api_url
        pg = s.effective_database_url.split("@")[-1]
        lines = [
            "",
            "Crucible is up.",
            f"  API docs       {api}/docs",
            f"  Temporal UI    {s.effective_temporal_ui_url}",
            f"  Temporal       {s.effective_temporal_address} (namespace {s.temporal_namespace})",
            f"  PostgreSQL     {pg}",
            f"  Kafka          {s.effective_kafka_bootstrap_servers} (events on {s.kafka_events_topic})",
            f"  Metrics        {api}/metrics   worker: http://127.0.0.1:{s.worker_metrics_port}/metrics",
        ]
        if s.temporal_address is None:
            lines.append(
                f"                 Temporal server: http://127.0.0.1:{s.temporal_metrics_port}/metrics"
            )
        if s.probe_metrics_port:
            lines.append(f"                 steady probes: http://127.0.0.1:{s.probe_metrics_port}/metrics")
        lines += chaos_banner(s)
        if self.demo:
            lines += demo_banner(s)
        lines += [
            *self._account_lines(api),
            f"  State          {self.home}  (logs in {self.logs})",
            f"  More workers   CRUCIBLE_HOME={self.home} crucible worker",
            "Press Ctrl-C to stop.",
            "",
        ]
        return "\n".join(lines)


async def run_dev(settings: Settings, *, demo: bool = False) -> int:
    """Run the stack until SIGINT or SIGTERM; returns the process exit code.

    With ``demo`` it also serves the demo target API, for a first QA run, and the demo shop,
    for sagas and saga tests.
    """
    stack = DevStack(settings, demo=demo)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(stack.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises what went wrong
            print(stack.banner(), flush=True)
            await stopping
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, StackError):
                await starting
        return 0
    except StackError as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:  # a part that failed in a way we did not foresee: say which, briefly
        log.error("the stack could not start: %s: %s", type(exc).__name__, exc)
        log.debug("details", exc_info=exc)
        return 1
    finally:
        stopping.cancel()
        print("Stopping Crucible…", flush=True)
        started = time.monotonic()
        await stack.stop()
        print(f"Stopped in {time.monotonic() - started:.1f} s.", flush=True)
