"""Real servers for the tests, on free loopback ports, started the way `crucible dev` starts them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from crucible.core import migrate
from crucible.stack.process import ManagedProcess
from crucible.stack.services import (
    EmbeddedPostgres,
    broker_spec,
    free_port,
    wait_kafka_ready,
)


def _quiet(_: str) -> None:
    """Child output goes to its log file only."""


@dataclass
class PostgresServer:
    server: EmbeddedPostgres
    log_path: Path
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return self.server.url()

    async def start(self) -> None:
        await asyncio.to_thread(self.server.prepare)
        self.process = ManagedProcess(self.server.spec(log_path=self.log_path, restart=False), echo=_quiet)
        await self.process.start()
        await self.server.wait_ready(timeout=60)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(10)
            self.process = None

    @classmethod
    async def launch(cls, folder: Path, *, migrated: bool = True) -> PostgresServer:
        pg = cls(EmbeddedPostgres(folder / "pgdata", port=free_port(), durable=False), folder / "pg.log")
        await pg.start()
        if migrated:
            await asyncio.to_thread(migrate.upgrade, pg.url)
        return pg


@dataclass
class KafkaBroker:
    port: int
    log_path: Path
    topic: str
    process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        spec = broker_spec(port=self.port, log_path=self.log_path, restart=False)
        self.process = ManagedProcess(spec, echo=_quiet)
        await self.process.start()
        await wait_kafka_ready(self.bootstrap, topic=self.topic)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(10)
            self.process = None

    @classmethod
    async def launch(cls, folder: Path, *, topic: str) -> KafkaBroker:
        broker = cls(port=free_port(), log_path=folder / "kafka.log", topic=topic)
        await broker.start()
        return broker


@dataclass
class ApiServer:
    """The real API served by uvicorn in the test's event loop."""

    app: object
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
