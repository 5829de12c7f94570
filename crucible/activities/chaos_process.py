"""Activities for chaos ``process`` faults: stop or kill local processes, and bring them back.

`ChaosProcessActivities.inject_process_fault` finds the processes whose command line holds the
fault's ``match`` and one of the worker's allowlist markers (``CRUCIBLE_FAULT_PROCESSES``),
records in the run's ledger how each was started, and only then signals them.
`ChaosProcessActivities.roll_back_process_fault` sends ``SIGCONT`` to a stopped process, or
starts a killed one again with its original argv, working directory and environment.

Both are safe under Temporal's retries, including a retry on a restarted worker after the
old one died half way: the ledger (see :mod:`crucible.core.chaos.processes`) fixes the
victims, a catchable signal is never sent twice, a restart is never started twice, and an
injection attempt that runs late, after the rollback began, signals nothing. The ledger is on
the worker's machine, so both activities must run on a worker of the machine the processes
live on, with the same state folder.

Errors (`ApplicationError` types, both non-retryable):

- ``ProcessFaultRefused``: the fault may not touch what it matches (no marker, no match, more
  matches than ``max_processes``, the worker or its ancestors), or its rollback has begun;
- ``ProcessRestartFailed``: a killed process could not be started again and kept running for
  ``restart_grace_s``, after `MAX_RESTART_ATTEMPTS` tries; the message ends with its output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.chaos.faults import number_error
from crucible.core.chaos.processes import (
    UNCATCHABLE,
    Ledger,
    LedgerStore,
    Spawner,
    Victim,
    capture,
    copies,
    find_victims,
    log_tail,
    state_of,
)
from crucible.core.errors import FieldError, InvalidRequestError
from crucible.core.saga_tests.processes import ProcessGone, ProcessRefused, signal_process

PROCESS_FAULT_REFUSED = "ProcessFaultRefused"
PROCESS_RESTART_FAILED = "ProcessRestartFailed"
#: The signals a fault may send. SIGSTOP is undone by SIGCONT; the others by a restart.
SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGSTOP")
STOP = "SIGSTOP"
MAX_RESTART_ATTEMPTS = 3
POLL_S = 0.05
PARAMS_LOC: tuple[str | int, ...] = ("body", "fault", "params")

# What a rollback did to each process.
CONTINUED, RESTARTED, REPLACED, RUNNING, GONE, LEFT_DOWN, UNTOUCHED = (
    "continued",
    "restarted",
    "replaced",
    "running",
    "gone",
    "left_down",
    "untouched",
)

T = TypeVar("T")


@dataclass
class ProcessFaultParams:
    #: A substring of the command line of the process(es) to signal.
    match: str
    signal: str = "SIGKILL"
    #: Start a killed process again on rollback (ignored for SIGSTOP, which SIGCONT undoes).
    restart: bool = True
    #: How long a restarted process must keep running for its restart to count.
    restart_grace_s: float = 1.0
    #: Refuse the fault when more processes than this match.
    max_processes: int = 1
    #: How long the rollback waits for a signalled process to exit before starting it again;
    #: one still running then (it handled the signal) is left running, not started twice.
    ready_timeout_s: float = 30.0


@dataclass
class ProcessFaultInput:
    run_id: str
    params: ProcessFaultParams


@dataclass
class FaultedProcess:
    """A process the fault signalled: enough to find it and to say how it was started."""

    pid: int
    started: int
    argv: list[str]
    cwd: str
    marker: str
    note: str = ""


@dataclass
class ProcessFaultState:
    """What the injection did; the environment of each process stays in the worker's ledger."""

    signal: str
    processes: list[FaultedProcess] = field(default_factory=list)


@dataclass
class ProcessRollbackInput:
    run_id: str
    params: ProcessFaultParams
    #: The injection's result, when the workflow has it.
    state: ProcessFaultState | None = None


@dataclass
class RestoredProcess:
    #: The process the fault signalled.
    pid: int
    #: ``continued``, ``restarted``, ``replaced`` (something else, a supervisor say, started it
    #: again), ``running`` (it never exited), ``gone`` (a stopped process that exited),
    #: ``left_down`` (restart is off) or ``untouched`` (it was never signalled).
    action: str
    new_pid: int | None = None
    note: str = ""


@dataclass
class ProcessRollbackResult:
    processes: list[RestoredProcess] = field(default_factory=list)
    note: str = ""


def process_params_from_dict(
    data: Mapping[str, Any], *, loc: tuple[str | int, ...] = PARAMS_LOC
) -> ProcessFaultParams:
    """A fault's ``params`` as `ProcessFaultParams`; `InvalidRequestError` naming every wrong field."""
    errors: list[FieldError] = []

    def wrong(name: str, msg: str, kind: str = "value_error") -> None:
        errors.append(FieldError((*loc, name), msg, kind))

    def number(name: str, default: float, *, minimum: float, integer: bool = False) -> Any:
        value = data.get(name, default)
        error = number_error((*loc, name), value, minimum=minimum, integer=integer)
        if error is None:
            return value
        errors.append(error)
        return default

    unknown = (name for name in data if name not in _FIELDS)
    errors.extend(FieldError((*loc, name), "unknown parameter", "extra_forbidden") for name in unknown)
    match = data.get("match")
    if not isinstance(match, str) or not match.strip():
        wrong("match", "a non-empty substring of the process's command line is required", "missing")
    raw_signal = data.get("signal", "SIGKILL")
    name = raw_signal.strip().upper() if isinstance(raw_signal, str) else ""
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in SIGNALS:
        wrong("signal", f"must be one of {', '.join(SIGNALS)}")
    restart = data.get("restart", True)
    if not isinstance(restart, bool):
        wrong("restart", "must be true or false", "type_error")
    params = ProcessFaultParams(
        match=match if isinstance(match, str) else "",
        signal=name,
        restart=restart is not False,
        restart_grace_s=float(number("restart_grace_s", 1.0, minimum=0)),
        max_processes=int(number("max_processes", 1, minimum=1, integer=True)),
        ready_timeout_s=float(number("ready_timeout_s", 30.0, minimum=0)),
    )
    if errors:
        raise InvalidRequestError(errors)
    return params


_FIELDS = frozenset(ProcessFaultParams.__dataclass_fields__)


class ChaosProcessActivities:
    """Process faults on this worker's machine, within the allowlist ``fault_processes``."""

    def __init__(self, fault_processes: Sequence[str], state_dir: Path) -> None:
        self.markers = list(fault_processes)
        self.ledgers = LedgerStore(state_dir)
        self.spawner = Spawner()

    @activity.defn
    async def inject_process_fault(self, request: ProcessFaultInput) -> ProcessFaultState:
        """Signal the processes the fault matches, once, after recording how they were started."""
        try:
            ledger = await asyncio.to_thread(self._inject, request)
        except ProcessRefused as exc:
            raise ApplicationError(str(exc), type=PROCESS_FAULT_REFUSED, non_retryable=True) from None
        shown = [FaultedProcess(v.pid, v.started, v.argv, v.cwd, v.marker, v.note) for v in ledger.victims]
        return ProcessFaultState(ledger.signal, shown)

    @activity.defn
    async def roll_back_process_fault(self, request: ProcessRollbackInput) -> ProcessRollbackResult:
        """Continue stopped processes, start killed ones again; says what it did to each."""
        ledger = await self._update(request.run_id, lambda ledger: _close(ledger, request))
        if not ledger.victims:
            return ProcessRollbackResult(note="no process fault was injected for this run: nothing to undo")
        restored = [await self._restore(request, ledger, index) for index in range(len(ledger.victims))]
        return ProcessRollbackResult(restored)

    # Injection, in a thread while holding the run's lock --------------------------------------

    def _inject(self, request: ProcessFaultInput) -> Ledger:
        params = request.params
        with self.ledgers.locked(request.run_id):
            ledger = self.ledgers.load(request.run_id)
            if ledger is not None and ledger.closing:
                raise ProcessRefused(f"the fault of run {request.run_id} is being rolled back: not injecting")
            if ledger is None:
                victims = self._choose(params)
                running = {copy for victim in victims for copy in copies(victim.argv)}
                ledger = Ledger(request.run_id, params.signal, victims, existing=sorted(map(list, running)))
                self.ledgers.save(ledger)
            for victim in ledger.victims:
                self._signal(ledger, victim)
        return ledger

    def _choose(self, params: ProcessFaultParams) -> list[Victim]:
        found = find_victims(params.match, self.markers)
        if len(found) > params.max_processes:
            pids = ", ".join(str(view.pid) for view, _ in found)
            raise ProcessRefused(
                f"{len(found)} processes match {params.match!r} (pids {pids}); "
                f"the fault allows {params.max_processes} (max_processes)"
            )
        with_env = params.restart and params.signal != STOP
        victims = []
        for view, marker in found:
            try:
                victims.append(capture(view, marker, with_env=with_env))
            except ProcessGone:
                continue
        if not victims:
            raise ProcessRefused(f"no process's command line holds {params.match!r}")
        return victims

    def _signal(self, ledger: Ledger, victim: Victim) -> None:
        if victim.sent:
            # Sent before the worker died, or maybe not: only a signal that cannot be caught is
            # sent again, and only where it has not taken effect.
            state = state_of(victim.pid, victim.started)
            if ledger.signal not in UNCATCHABLE or state is None or (ledger.signal == STOP and state in "Tt"):
                return
        victim.sent = True
        self.ledgers.save(ledger)
        try:
            signal_process(victim.pid, ledger.signal, started=victim.started, markers=self.markers)
        except ProcessGone as exc:
            victim.note = f"had exited before it was signalled: {exc}"
            self.ledgers.save(ledger)

    # Rollback ------------------------------------------------------------------------------------

    async def _update(self, run_id: str, change: Callable[[Ledger], T]) -> T:
        def locked() -> T:
            with self.ledgers.locked(run_id):
                ledger = self.ledgers.load(run_id) or Ledger(run_id, "")
                result = change(ledger)
                self.ledgers.save(ledger)
                return result

        return await asyncio.to_thread(locked)

    async def _restore(self, request: ProcessRollbackInput, ledger: Ledger, index: int) -> RestoredProcess:
        victim = ledger.victims[index]
        if victim.outcome is not None:
            return _restored(victim)
        if not victim.sent:
            outcome, note = UNTOUCHED, "the fault never signalled it"
        elif ledger.signal == STOP:
            outcome, note = self._continue(victim)
        elif not request.params.restart:
            outcome, note = LEFT_DOWN, "restart is off"
        else:
            return await self._restart(request, index)
        return _restored(await self._record(request.run_id, index, outcome, note))

    def _continue(self, victim: Victim) -> tuple[str, str]:
        try:
            signal_process(victim.pid, "SIGCONT", started=victim.started, markers=self.markers)
        except ProcessGone as exc:
            return GONE, f"not continued: {exc}"
        except ProcessRefused as exc:
            raise ApplicationError(
                f"cannot continue pid {victim.pid}: {exc}", type=PROCESS_FAULT_REFUSED, non_retryable=True
            ) from None
        return CONTINUED, ""

    async def _restart(self, request: ProcessRollbackInput, index: int) -> RestoredProcess:
        params, run_id = request.params, request.run_id
        victim = await self._update(run_id, lambda ledger: ledger.victims[index])
        deadline = time.monotonic() + params.ready_timeout_s
        while state_of(victim.pid, victim.started) is not None:
            if time.monotonic() >= deadline:
                note = f"still running {params.ready_timeout_s:g}s after the signal: not started twice"
                return _restored(await self._record(run_id, index, RUNNING, note))
            activity.heartbeat(f"waiting for pid {victim.pid} to exit")
            await asyncio.sleep(POLL_S)
        while True:
            victim, running = await self._update(run_id, lambda ledger: self._start_once(ledger, index))
            assert victim.restart_pid is not None and victim.restart_started is not None
            if running is not None:
                return _restored(await self._record(run_id, index, running, victim.note))
            if victim.restart_pid == 0:  # it could not even be started; the note says why
                await asyncio.sleep(POLL_S * 4)
                continue
            grace_end = time.monotonic() + params.restart_grace_s
            alive = self.spawner.alive(victim.restart_pid, victim.restart_started)
            while alive and time.monotonic() < grace_end:
                activity.heartbeat(f"pid {victim.restart_pid} started; watching it")
                await asyncio.sleep(min(POLL_S, params.restart_grace_s))
                alive = self.spawner.alive(victim.restart_pid, victim.restart_started)
            if alive:
                return _restored(await self._record(run_id, index, RESTARTED, ""))
            await self._record(run_id, index, None, f"it exited within {params.restart_grace_s:g}s")
            await asyncio.sleep(POLL_S * 4)

    def _start_once(self, ledger: Ledger, index: int) -> tuple[Victim, str | None]:
        """Start the victim again unless a copy of it runs already; (victim, None) when started
        now, else the action that brought it back: ``restarted`` by an earlier attempt of ours,
        or ``replaced`` by something else (a supervisor, say)."""
        victim = ledger.victims[index]
        started = victim.restart_started
        if victim.restart_pid and started is not None and self.spawner.alive(victim.restart_pid, started):
            victim.note = "started by an earlier attempt of this rollback"
            return victim, RESTARTED
        known = {(pid, tick) for pid, tick in ledger.existing}
        known |= {(v.restart_pid, v.restart_started or 0) for v in ledger.victims if v.restart_pid}
        newcomer = next((copy for copy in copies(victim.argv) if copy not in known), None)
        if newcomer is not None:
            victim.restart_pid, victim.restart_started = newcomer
            victim.note = (
                f"pid {newcomer[0]} runs the same command, started since the fault: not started twice"
            )
            return victim, REPLACED
        log_path = self.ledgers.log_path(ledger.run_id, victim.pid)
        if victim.env is None:
            self._give_up(victim, log_path, "its environment was never recorded (the ledger was lost)")
        if victim.restart_attempts >= MAX_RESTART_ATTEMPTS:
            self._give_up(victim, log_path, victim.note)
        victim.restart_attempts += 1
        try:
            victim.restart_pid, victim.restart_started = self.spawner.start(victim, log_path)
        except (OSError, ProcessGone) as exc:
            victim.restart_pid, victim.restart_started = 0, 0
            victim.note = f"could not start it: {exc}"
        return victim, None

    def _give_up(self, victim: Victim, log_path: Path, why: str) -> None:
        output = log_tail(log_path)
        tries = f" after {victim.restart_attempts} attempts" if victim.restart_attempts else ""
        raise ApplicationError(
            f"could not restart pid {victim.pid} ({' '.join(victim.argv)}){tries}: {why}"
            + (f"; its output ends: {output}" if output else ""),
            type=PROCESS_RESTART_FAILED,
            non_retryable=True,
        )

    async def _record(self, run_id: str, index: int, outcome: str | None, note: str) -> Victim:
        def change(ledger: Ledger) -> Victim:
            victim = ledger.victims[index]
            victim.outcome, victim.note = outcome, note
            return victim

        return await self._update(run_id, change)


def _close(ledger: Ledger, request: ProcessRollbackInput) -> Ledger:
    """Mark the rollback as begun; a lost ledger is rebuilt from the injection's result."""
    if not ledger.signal and request.state is not None:
        ledger.signal = request.state.signal
        ledger.victims = [
            Victim(p.pid, p.started, p.argv, p.cwd, p.marker, sent=True) for p in request.state.processes
        ]
    ledger.closing = True
    return ledger


def _restored(victim: Victim) -> RestoredProcess:
    new_pid = victim.restart_pid if victim.outcome in (RESTARTED, REPLACED) else None
    return RestoredProcess(victim.pid, victim.outcome or "", new_pid, victim.note)
