"""Driving `crucible dev` as a user would: a child process, its output, its signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from crucible.stack.services import free_port

#: Variables that would make `crucible dev` use outside parts instead of starting its own.
OUTSIDE = ("TEMPORAL_ADDRESS", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "CRUCIBLE_API_URL")


def dev_environment(home: Path, ports: dict[str, int] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE and not k.startswith("CRUCIBLE_")}
    ports = ports or {
        name: free_port()
        for name in (
            "API",
            "TEMPORAL",
            "TEMPORAL_UI",
            "TEMPORAL_METRICS",
            "POSTGRES",
            "KAFKA",
            "WORKER_METRICS",
            "DEMO",
            "DEMO_PROXY",
            "SHOP_ORDER",
            "SHOP_INVENTORY",
            "SHOP_PAYMENT",
            "PROMETHEUS",
            "CHAOS_PROXY",
            "PROBE_METRICS",
        )
    }
    env.update({f"CRUCIBLE_{name}_PORT": str(port) for name, port in ports.items()})
    env["CRUCIBLE_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A crucible command running as a child process, its output collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.closed = False
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], module: str = "crucible") -> Child:
        """``python -m <module> <args>``, by default the ``crucible`` command."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self.closed = True
        self._changed.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str, *, timeout: float = 60, start: int = 0) -> re.Match[str]:
        """The first output line from ``start`` on that matches ``pattern``."""
        try:
            return await asyncio.wait_for(self._wait_for(re.compile(pattern), start), timeout)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output}") from None

    async def _wait_for(self, regex: re.Pattern[str], start: int) -> re.Match[str]:
        checked = start
        while True:
            for line in self.lines[checked:]:
                if match := regex.search(line):
                    return match
            checked = max(checked, len(self.lines))
            if self.closed:
                raise AssertionError(
                    f"exited ({await self.proc.wait()}) before {regex.pattern!r}:\n{self.output}"
                )
            self._changed.clear()
            await self._changed.wait()

    def child_pids(self) -> dict[str, list[int]]:
        pids: dict[str, list[int]] = {}
        for line in self.lines:
            if match := re.match(r"^(\w+)\s*\| \[crucible\] started \(pid (\d+)\)", line):
                pids.setdefault(match[1], []).append(int(match[2]))
        return pids

    async def terminate(self, *, timeout: float = 30) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout=timeout)

    async def wait(self, *, timeout: float = 30) -> int:
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def live_processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Processes (not zombies) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(
                line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")
            )
        except (OSError, StopIteration):
            continue
        if text in cmdline and "Z" not in state.split()[1]:
            found.append((int(entry.name), cmdline.strip()))
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]
