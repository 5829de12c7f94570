"""Which processes a saga test's process fault may signal, and signalling exactly the one it checked.

A process fault signals a pid on the worker's machine, where the worker may run as root and
the API has no authentication yet. So a pid is signalled only when:

- process faults are on: ``CRUCIBLE_FAULT_PROCESSES`` lists at least one marker;
- its command line (``/proc/<pid>/cmdline``) contains one of the markers;
- it is a process (not a thread of one), and neither the worker nor one of its ancestors;
- it is still the process that was checked at injection: its start time (``/proc/<pid>/stat``
  field 22) is the same, so a pid that the kernel gave to a new process is never signalled.

The signal goes through a pidfd opened before the start time is read, so the process checked
is the process signalled. Linux only (``/proc``); elsewhere process faults are refused.

ProcessRefused (an Exception)   the process may not be signalled; the message says why
  ProcessGone                   there is no such process (any more)
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
#: The kernel's highest possible pid (``PID_MAX_LIMIT`` on 64-bit Linux), when pid_max cannot be read.
PID_MAX_LIMIT = 4_194_304
#: The field of ``/proc/<pid>/stat`` (1-based) with the process's start time, in clock ticks after boot.
STARTTIME_FIELD = 22
_PPID_FIELD = 4
SETTING = "CRUCIBLE_FAULT_PROCESSES"


class ProcessRefused(Exception):
    """The process may not be signalled; the message says why."""


class ProcessGone(ProcessRefused):
    """There is no such process (any more)."""


@dataclass(frozen=True)
class ProcessView:
    pid: int
    ppid: int
    #: The state letter: ``R``, ``S``, ``T`` (stopped), ``Z`` (a zombie: it has exited)…
    state: str
    #: The process the pid belongs to: the pid itself, unless the pid is one of its threads.
    tgid: int
    #: Clock ticks after boot: with the pid, it names one process for as long as the machine runs.
    started: int
    #: ``/proc/<pid>/cmdline`` with its NULs as spaces; empty for kernel threads and zombies.
    command: str


def pid_max(proc: Path = PROC) -> int:
    """The highest pid this machine hands out."""
    try:
        return int((proc / "sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return PID_MAX_LIMIT


def _stat_fields(text: str) -> list[str]:
    # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
    head, _, rest = text.rpartition(")")
    return [head.split(" (", 1)[0], "comm", *rest.split()]


def read_process(pid: int, proc: Path = PROC) -> ProcessView:
    """What ``/proc`` says about ``pid``; :class:`ProcessGone` when there is no such process."""
    if not proc.is_dir():
        raise ProcessRefused(f"process faults need {proc} (Linux); this worker has none")
    base = proc / str(pid)
    try:
        fields = _stat_fields((base / "stat").read_text())
        status = (base / "status").read_text()
        command = (base / "cmdline").read_bytes()
    except FileNotFoundError:
        raise ProcessGone(f"no process {pid}") from None
    except OSError as exc:
        raise ProcessRefused(f"cannot read /proc/{pid}: {exc.strerror or exc}") from None
    tgid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Tgid:")), pid)
    return ProcessView(
        pid=pid,
        ppid=int(fields[_PPID_FIELD - 1]),
        state=fields[2],
        tgid=tgid,
        started=int(fields[STARTTIME_FIELD - 1]),
        command=command.replace(b"\0", b" ").decode(errors="replace").strip(),
    )


def lineage(pid: int | None = None, proc: Path = PROC) -> set[int]:
    """``pid`` (default: this process) and all its ancestors."""
    found: set[int] = set()
    current = os.getpid() if pid is None else pid
    while current > 0 and current not in found:
        found.add(current)
        try:
            current = read_process(current, proc).ppid
        except ProcessRefused:
            break
    return found


def markers_of(setting: str) -> list[str]:
    """The markers of a comma-separated setting, without blanks."""
    return [m.strip() for m in setting.split(",") if m.strip()]


def allowed_marker(view: ProcessView, markers: Sequence[str], protected: set[int]) -> str:
    """The marker that lets ``view`` be signalled; :class:`ProcessRefused` naming why not."""
    pid = view.pid
    if not markers:
        raise ProcessRefused(f"process faults are switched off: {SETTING} is empty on this worker")
    if pid <= 1:
        raise ProcessRefused(f"will not signal pid {pid}")
    if view.tgid != pid:
        raise ProcessRefused(f"pid {pid} is a thread of process {view.tgid}; give the process's pid")
    if pid in protected:
        raise ProcessRefused(f"pid {pid} is the worker or one of its ancestors")
    if not view.command:
        raise ProcessRefused(f"pid {pid} has no command line (a kernel thread or a zombie)")
    marker = next((m for m in markers if m in view.command), None)
    if marker is None:
        raise ProcessRefused(
            f"pid {pid}'s command line holds none of {SETTING} ({', '.join(markers)}), "
            "so the worker will not signal it"
        )
    return marker


@contextlib.contextmanager
def pinned(pid: int) -> Iterator[int | None]:
    """A pidfd for ``pid`` (None where the kernel has none): it keeps naming this process."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise ProcessGone(f"no process {pid}") from None
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def signal_process(
    pid: int, name: str, *, started: int, markers: Sequence[str], proc: Path = PROC
) -> ProcessView:
    """Send signal ``name`` to ``pid`` if it is allowed and is still the process that started at
    ``started``; :class:`ProcessRefused` (or :class:`ProcessGone`) naming why not."""
    number = signal.Signals[name]
    with pinned(pid) as fd:
        view = read_process(pid, proc)
        if view.state == "Z":
            raise ProcessGone(f"process {pid} has exited")
        if view.started != started:
            raise ProcessGone(
                f"pid {pid} is another process now (started at tick {view.started}, not {started})"
            )
        allowed_marker(view, markers, lineage(proc=proc))
        try:
            if fd is None:
                os.kill(pid, number)
            else:
                signal.pidfd_send_signal(fd, number)
        except ProcessLookupError:
            raise ProcessGone(f"process {pid} has gone") from None
        except PermissionError as exc:
            raise ProcessRefused(f"cannot send {name} to {pid}: {exc.strerror or exc}") from None
    return view
