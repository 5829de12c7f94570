"""What a chaos ``process`` fault needs beyond signalling: finding its victims, remembering
how to start them again, and starting them again.

Signalling goes through :mod:`crucible.core.saga_tests.processes`, with the same safety rules
(allowlist markers, never the worker or its ancestors, start-time identity through a pidfd).

A fault's ledger is a 0600 JSON file under the worker's state folder, one per run. It is
written before any signal is sent, so a retry after the worker died half way knows its
victims and does not pick new ones, and a rollback can start a killed process again with its
original argv, working directory and environment even if the workflow never saw the
injection's result. The environment stays in this file: it never reaches Temporal history.
Every read-modify-write of a ledger holds an exclusive lock on its ``.lock`` file, so an
injection and a rollback of one run never interleave. Linux only, like the rules it reuses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crucible.core.saga_tests.processes import (
    PROC,
    ProcessGone,
    ProcessRefused,
    ProcessView,
    allowed_marker,
    lineage,
    pinned,
    read_process,
)

#: Signals that neither can be caught nor add anything when sent twice: a retry may resend them.
UNCATCHABLE = frozenset({"SIGKILL", "SIGSTOP"})


@dataclass
class Victim:
    """One process a fault signalled, and what its rollback did."""

    pid: int
    started: int
    argv: list[str]
    cwd: str
    marker: str
    #: The original environment; only ever in the ledger file.
    env: dict[str, str] | None = None
    #: Set just before the signal is sent: a retry never sends a catchable signal again.
    sent: bool = False
    #: The process a rollback started in its place, and how many starts were tried.
    restart_pid: int | None = None
    restart_started: int | None = None
    restart_attempts: int = 0
    #: What the rollback concluded (``restarted``, ``continued``, ``running``…), once it has.
    outcome: str | None = None
    note: str = ""


@dataclass
class Ledger:
    run_id: str
    signal: str
    victims: list[Victim] = field(default_factory=list)
    #: A rollback has begun: a late injection attempt must not signal anything any more.
    closing: bool = False
    #: ``[pid, start time]`` of every process running a victim's argv at injection: a copy
    #: that is not among them was started since, by a supervisor say.
    existing: list[list[int]] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> Ledger:
        data = json.loads(text)
        return cls(
            run_id=data["run_id"],
            signal=data["signal"],
            victims=[Victim(**v) for v in data["victims"]],
            closing=data["closing"],
            existing=data.get("existing", []),
        )


class LedgerStore:
    """The ledgers of one worker, in ``folder`` (created 0700)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _stem(self, run_id: str) -> str:
        readable = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80]
        return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"

    def path(self, run_id: str) -> Path:
        return self.folder / f"{self._stem(run_id)}.json"

    def log_path(self, run_id: str, pid: int) -> Path:
        """Where the output of the process restarted in place of ``pid`` goes."""
        return self.folder / f"{self._stem(run_id)}-{pid}.log"

    @contextlib.contextmanager
    def locked(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock; blocking, so call it from a thread, not the event loop."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.folder / f"{self._stem(run_id)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self, run_id: str) -> Ledger | None:
        try:
            return Ledger.from_json(self.path(run_id).read_text())
        except FileNotFoundError:
            return None

    def save(self, ledger: Ledger) -> None:
        """Replace the ledger atomically; it is on disk when this returns."""
        path = self.path(ledger.run_id)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(ledger), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)


def find_victims(match: str, markers: Sequence[str], proc: Path = PROC) -> list[tuple[ProcessView, str]]:
    """The processes whose command line holds ``match`` and which may be signalled, by pid, each
    with the marker that allows it.

    :class:`ProcessRefused` when processes match but none may be signalled (naming why).
    """
    if not proc.is_dir():
        raise ProcessRefused(f"process faults need {proc} (Linux); this worker has none")
    protected = lineage(proc=proc)
    allowed: list[tuple[ProcessView, str]] = []
    refusal: ProcessRefused | None = None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            view = read_process(int(entry.name), proc)
        except ProcessRefused:
            continue
        if match not in view.command or view.state == "Z":
            continue
        try:
            allowed.append((view, allowed_marker(view, markers, protected)))
        except ProcessRefused as exc:
            refusal = refusal or exc
    if not allowed and refusal is not None:
        raise refusal
    return sorted(allowed, key=lambda found: found[0].pid)


def copies(argv: Sequence[str], proc: Path = PROC) -> list[tuple[int, int]]:
    """``(pid, start time)`` of the live processes whose argv is exactly ``argv``."""
    wanted = b"".join(a.encode(errors="surrogateescape") + b"\0" for a in argv)
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() != wanted:
                continue
            view = read_process(int(entry.name), proc)
        except (OSError, ProcessRefused):
            continue
        if view.state not in ("Z", "X") and view.tgid == view.pid:
            found.append((view.pid, view.started))
    return sorted(found)


def capture(view: ProcessView, marker: str, *, with_env: bool, proc: Path = PROC) -> Victim:
    """Argv, working directory and (if asked) environment of the process ``view`` describes.

    Read through a pidfd after the start time is checked, so they belong to that process.
    """
    base = proc / str(view.pid)
    with pinned(view.pid):
        if read_process(view.pid, proc).started != view.started:
            raise ProcessGone(f"pid {view.pid} is another process now")
        try:
            argv = [a.decode(errors="surrogateescape") for a in (base / "cmdline").read_bytes().split(b"\0")]
            cwd = os.readlink(base / "cwd")
            env = _environment((base / "environ").read_bytes()) if with_env else None
        except FileNotFoundError:
            raise ProcessGone(f"no process {view.pid}") from None
        except OSError as exc:
            raise ProcessRefused(
                f"cannot read how pid {view.pid} was started, so could not restart it: {exc.strerror or exc}"
            ) from None
    while argv and argv[-1] == "":
        argv.pop()
    return Victim(pid=view.pid, started=view.started, argv=argv, cwd=cwd, marker=marker, env=env)


def _environment(raw: bytes) -> dict[str, str]:
    pairs = (item.decode(errors="surrogateescape").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs if name}


def state_of(pid: int, started: int, proc: Path = PROC) -> str | None:
    """The state letter of the process ``pid`` that started at ``started``; None once it has gone."""
    try:
        view = read_process(pid, proc)
    except ProcessRefused:
        return None
    if view.started != started or view.state in ("Z", "X"):
        return None
    return view.state


class Spawner:
    """Starts processes detached from the worker (a new session, no terminal) and reaps them."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, victim: Victim, log_path: Path) -> tuple[int, int]:
        """Start ``victim``'s argv in its cwd and environment; its pid and start time."""
        with open(log_path, "ab") as log:
            child = subprocess.Popen(
                victim.argv,
                cwd=victim.cwd,
                env=victim.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._children[child.pid] = child
        try:
            return child.pid, read_process(child.pid).started
        except ProcessRefused:
            child.wait()
            raise ProcessGone(f"it exited at once with status {child.returncode}") from None

    def alive(self, pid: int, started: int) -> bool:
        """Whether that process still runs; a child of ours that exited is reaped here."""
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            del self._children[pid]
            return False
        return state_of(pid, started) is not None


def log_tail(path: Path, limit: int = 400) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - limit))
            return log.read().decode(errors="replace").strip()
    except OSError:
        return ""
