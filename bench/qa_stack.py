"""The parts the QA benchmark runs against: the event-log benchmark's stack, Crucible's own
worker, and the targets (:mod:`bench.qa_target`), each a child process on a free port.

PostgreSQL, Kafka, the Temporal dev server (in memory) and the API start as in
:mod:`bench.event_log.stack`; the worker is ``python -m crucible worker``, which
registers the QA workflow and activities, with one pooled HTTP client for targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.event_log.stack import READY_TIMEOUT_S, REPO_ROOT, STOP_TIMEOUT_S, BenchStack
from bench.qa_target import SPEC_PATH
from crucible.core.qa.spec import Spec
from crucible.stack.process import ProcessSpec
from crucible.stack.services import EmbeddedPostgres, StackError, free_port, wait_until

#: What Crucible's worker logs once it is about to poll (at INFO).
WORKER_READY = "worker polling task queue"


@dataclass
class QaBenchStack(BenchStack):
    #: Target name → its base URL.
    targets: dict[str, str] = field(default_factory=dict)

    async def start_worker(
        self,
        argv: list[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        ready_line: str = WORKER_READY,
    ) -> None:
        """Crucible's real worker, so QA runs go through exactly what users run."""
        await super().start_worker(
            argv or [sys.executable, "-m", "crucible", "worker"],
            env={
                "CRUCIBLE_LOG_LEVEL": "INFO",  # for the ready line; the worker says little at INFO
                "CRUCIBLE_WORKER_METRICS_PORT": str(free_port()),
                **(env or {}),
            },
            ready_line=ready_line,
        )

    async def start_target(self, name: str, *, delay_ms: float, operations: int) -> None:
        port = free_port()
        await self._start(
            ProcessSpec(
                name=name,
                argv=[
                    sys.executable,
                    "-m",
                    "bench.qa_target",
                    f"--port={port}",
                    f"--delay-ms={delay_ms:g}",
                    f"--operations={operations}",
                ],
                cwd=REPO_ROOT,
                log_path=self.workdir / f"{name}.log",
                restart=False,
            )
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:

            async def serving() -> None:
                response = await http.get(SPEC_PATH)
                response.raise_for_status()
                if len(Spec(response.json()).operations) != operations:
                    raise StackError(f"{name} serves a spec without {operations} operations")

            await wait_until(name, serving, timeout=READY_TIMEOUT_S, interval=0.1)
        self.targets[name] = url

    async def stop(self) -> None:
        targets = [self.processes[name] for name in self.targets if name in self.processes]
        await super().stop()
        await asyncio.gather(*(process.stop(STOP_TIMEOUT_S) for process in targets))


@contextlib.asynccontextmanager
async def running_qa_stack(
    workdir: Path, *, targets: dict[str, float], operations: int
) -> AsyncIterator[QaBenchStack]:
    """Every part started in ``workdir``, and ``targets`` (name → delay in ms); all stopped on exit."""
    pg_port, kafka_port, temporal_port, api_port = (free_port() for _ in range(4))
    stack = QaBenchStack(
        workdir=workdir,
        postgres=EmbeddedPostgres(workdir / "pgdata", port=pg_port, durable=False),
        temporal_address=f"127.0.0.1:{temporal_port}",
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        api_url=f"http://127.0.0.1:{api_port}",
    )
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(stack.start_postgres())
            group.create_task(stack.start_kafka(kafka_port))
            group.create_task(stack.start_temporal(temporal_port))
            for name, delay_ms in targets.items():
                group.create_task(stack.start_target(name, delay_ms=delay_ms, operations=operations))
        async with asyncio.TaskGroup() as group:
            group.create_task(stack.start_worker())
            group.create_task(stack.start_api(api_port))
        yield stack
    finally:
        await stack.stop()
