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
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.event_log.stack import READY_TIMEOUT_S, REPO_ROOT, STOP_TIMEOUT_S, BenchStack, running_stack
from bench.qa_target import SPEC_PATH
from crucible.core.qa.spec import Spec
from crucible.stack.process import ProcessSpec
from crucible.stack.services import StackError, free_port, wait_until

#: What Crucible's worker logs once it is about to poll (at INFO).
WORKER_READY = "worker polling task queue"


@dataclass
class QaBenchStack(BenchStack):
    #: Target name → how long it takes to answer, in ms.
    wanted: dict[str, float] = field(default_factory=dict)
    #: Operations in the targets' spec.
    operations: int = 0
    #: Target name → its base URL, once it serves.
    targets: dict[str, str] = field(default_factory=dict)

    def more_parts(self) -> list[Coroutine[Any, Any, None]]:
        return [self.start_target(name, delay_ms=delay) for name, delay in self.wanted.items()]

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

    async def start_target(self, name: str, *, delay_ms: float) -> None:
        operations = self.operations
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
    async with running_stack(
        workdir, stack_type=QaBenchStack, wanted=targets, operations=operations
    ) as stack:
        assert isinstance(stack, QaBenchStack)
        yield stack
