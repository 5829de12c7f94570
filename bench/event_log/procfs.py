"""Memory and CPU time of processes, read from ``/proc`` (Linux only)."""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field: str) -> int:
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (``VmHWM``), in MB."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    """The process's resident set size now (``VmRSS``), in MB."""
    return _status_kb(pid, "VmRSS") / 1024


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces; the fields follow it.
    return raw[raw.rindex(")") + 2 :].split()


def tree_cpu_seconds(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU time of each root process and its live descendants, plus their reaped children.

    PostgreSQL runs one process per connection, so its cost is the whole tree's.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        # After the name: state, ppid (index 1), …, utime, stime, cutime, cstime (11 to 14).
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(value) for value in fields[11:15])
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    result: dict[str, float] = {}
    for name, root in roots.items():
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            total += ticks.get(pid, 0)
            todo.extend(children.get(pid, ()))
        result[name] = total / _TICKS
    return result


def own_cpu_seconds() -> float:
    """CPU time of this process (all its threads), without its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
