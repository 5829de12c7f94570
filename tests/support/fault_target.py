"""A small child process for process faults to signal: it says which signals it received."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

#: The child prints the name of each signal it catches; SIGSTOP cannot be caught, but the
#: SIGCONT that ends it can.
_CHILD = """
import signal, sys, time
def said(number, frame):
    print(signal.Signals(number).name, flush=True)
for name in ("SIGCONT", "SIGUSR1", "SIGUSR2"):
    signal.signal(getattr(signal, name), said)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@dataclass
class FaultTarget:
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def state(self) -> str:
        """The process's state letter in ``/proc/<pid>/stat``: ``T`` is stopped."""
        return Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    async def stopped(self, *, within_s: float = 5) -> bool:
        """Whether it is stopped, once a signal sent just now has been delivered."""
        async with asyncio.timeout(within_s):
            while self.state() != "T":
                await asyncio.sleep(0.01)
        return True

    async def received(self, *, settle_s: float = 0.2) -> list[str]:
        """The signals it has caught so far, in order."""
        await asyncio.sleep(settle_s)
        assert self.process.stdout is not None
        while True:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), 0.05)
            except TimeoutError:
                break
            if not line:
                break
            self.lines.append(line.decode().strip())
        return [line for line in self.lines if line != "ready"]


@contextlib.asynccontextmanager
async def fault_target(marker: str) -> AsyncIterator[FaultTarget]:
    """A Python child with ``marker`` in its command line, so the worker may signal it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, marker, stdout=asyncio.subprocess.PIPE
    )
    target = FaultTarget(process)
    try:
        assert process.stdout is not None
        target.lines.append((await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip())
        yield target
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
