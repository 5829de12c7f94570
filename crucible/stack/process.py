"""Supervised child processes: output kept, crashes restarted, nothing left behind.

Each child runs in its own process group (so a Ctrl-C in the terminal reaches only
the supervisor, which stops children in order) and is told by the kernel to exit
if the supervisor dies (``PR_SET_PDEATHSIG``), so even a killed supervisor leaves
no orphans. Output is read continuously, line by line: a child whose pipe fills up
would freeze.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("crucible.stack")

_PR_SET_PDEATHSIG = 1
#: Restart delays grow from the first to the last, and reset after a stable run.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0
TAIL_LINES = 40
PUMP_DRAIN_S = 0.3


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessSpec:
    """How to start one child process."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    log_path: Path | None = None
    echo: bool = False
    restart: bool = True


class ManagedProcess:
    """One supervised child: start, restart on crash with backoff, stop in time."""

    def __init__(self, spec: ProcessSpec, *, echo: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self._echo = echo or (lambda line: print(line, flush=True))
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False
        self._log_file: IO[str] | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        self._stopping = False
        if self.spec.log_path is not None and self._log_file is None:
            self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.spec.log_path.open("a", buffering=1, encoding="utf-8")
        await self._spawn()
        if self.spec.restart:
            self._watcher = asyncio.create_task(self._watch(), name=f"watch-{self.spec.name}")

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.spec.env,
            cwd=self.spec.cwd,
            user=self.spec.user,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=1 << 20,
        )
        self._write(f"started (pid {self._proc.pid})", own=True)
        self._pump = asyncio.create_task(self._read_output(self._proc), name=f"pump-{self.spec.name}")

    def _write(self, line: str, *, own: bool = False) -> None:
        text = f"[crucible] {line}" if own else line
        self.tail.append(text)
        if self._log_file is not None:
            self._log_file.write(text + "\n")
        if self.spec.echo or own:
            self._echo(f"{self.spec.name:<9}| {text}")

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line longer than the buffer: take what there is
                raw = await proc.stdout.read(1 << 16)
            if not raw:
                return
            self._write(raw.decode("utf-8", "replace").rstrip("\n"))

    async def _watch(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = await proc.wait()
            if self._pump is not None:
                await self._pump
            if self._stopping:
                return
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff = BACKOFF_FIRST_S
            self.restarts += 1
            if not self.spec.echo:  # its output went only to its log: show how it ended
                for line in list(self.tail)[-10:]:
                    self._echo(f"{self.spec.name:<9}| {line}")
            self._write(
                f"exited unexpectedly with code {code}; restarting in {backoff:.0f} s "
                f"(restart {self.restarts})",
                own=True,
            )
            log.warning("%s crashed (code %s); restarting in %.0f s", self.spec.name, code, backoff)
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            await self._spawn()

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, timeout: float) -> int | None:
        """Stop the child: its stop signal, then SIGKILL to its group after ``timeout``.

        Returns within ``timeout`` plus :data:`PUMP_DRAIN_S`.
        """
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        proc = self._proc
        code: int | None = None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.spec.stop_signal)
                try:
                    code = await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    self._write(f"did not stop within {timeout:.0f} s; killing it", own=True)
            self._signal_group(signal.SIGKILL)  # whatever it started, too
            code = await proc.wait()
            if self._pump is not None:  # the last lines of output, if they come at once
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self._pump, PUMP_DRAIN_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def kill(self) -> None:
        """SIGKILL the child's whole group now, as a crash would (it restarts if enabled)."""
        self._signal_group(signal.SIGKILL)
