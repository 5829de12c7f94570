"""Process faults against real child processes: kill and restart, stop and continue, retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.chaos_process import (
    CONTINUED,
    PROCESS_FAULT_REFUSED,
    PROCESS_RESTART_FAILED,
    REPLACED,
    RESTARTED,
    RUNNING,
    ChaosProcessActivities,
    ProcessFaultInput,
    ProcessFaultParams,
    ProcessFaultState,
    ProcessRollbackInput,
    ProcessRollbackResult,
    process_params_from_dict,
)
from crucible.core.chaos.processes import LedgerStore, find_victims, state_of
from crucible.core.errors import InvalidRequestError
from crucible.core.saga_tests.processes import ProcessRefused, lineage, read_process

pytestmark = pytest.mark.timeout(30)

MARKER = "crucible-chaos-target"
SECRET = "only-in-the-environment"

#: Notes each start (and each SIGTERM it survives) in the report file; with the ``--once`` flag
#: file present it exits at once, so it cannot be restarted.
_CHILD = """
import os, signal, sys, time
report, once = sys.argv[2], sys.argv[3]
def note(line):
    with open(report, "a") as out:
        out.write(line + "\\n")
if os.path.exists(once):
    sys.exit(3)
if os.environ.get("CHAOS_STUBBORN"):
    signal.signal(signal.SIGTERM, lambda *_: note(f"SIGTERM {os.getpid()}"))
note(f"start {os.getpid()} {os.getcwd()} {os.environ.get('CHAOS_SECRET')}")
while True:
    time.sleep(0.05)
"""


@dataclass
class Target:
    """Child processes started under one unique marker, which is also the fault's ``match``."""

    folder: Path
    match: str = field(default_factory=lambda: f"{MARKER}-{uuid.uuid4().hex[:8]}")
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.folder / "report.txt"

    async def start(self, **env: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, self.match, str(self.report), str(self.folder / "once"),
            cwd=self.folder,
            env={**os.environ, "CHAOS_SECRET": SECRET, **env},
            start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        await self.lines(f"start {process.pid}")
        return process.pid

    async def lines(self, prefix: str = "", *, count: int = 1) -> list[str]:
        """The report's lines starting with ``prefix``, once there are ``count`` of them."""
        async with asyncio.timeout(10):
            while True:
                text = self.report.read_text() if self.report.exists() else ""
                found = [line for line in text.splitlines() if line.startswith(prefix)]
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.02)

    def stop_all(self) -> None:
        text = self.report.read_text() if self.report.exists() else ""
        for line in text.splitlines():
            pid = int(line.split()[1])
            with contextlib.suppress(OSError):
                if self.match in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    folder = tmp_path / "target"
    folder.mkdir()
    t = Target(folder)
    try:
        yield t
    finally:
        t.stop_all()
        for process in t.processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def chaos(tmp_path: Path, markers: tuple[str, ...] = (MARKER,)) -> ChaosProcessActivities:
    return ChaosProcessActivities(markers, tmp_path / "chaos-state")


def params(target: Target, **overrides: Any) -> ProcessFaultParams:
    return ProcessFaultParams(target.match, **{"restart_grace_s": 0.3, **overrides})


async def run(method: Callable[..., Any], arg: Any) -> Any:
    return await ActivityEnvironment().run(method, arg)


async def failure(method: Callable[..., Any], arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(method, arg)
    assert caught.value.non_retryable
    return caught.value


async def gone(pid: int, started: int) -> None:
    async with asyncio.timeout(5):
        while state_of(pid, started) is not None:
            await asyncio.sleep(0.02)


async def test_a_killed_process_is_started_again_as_it_was_once(tmp_path: Path, target: Target) -> None:
    pid = await target.start()
    activities, fault = chaos(tmp_path), params(target)
    state: ProcessFaultState = await run(activities.inject_process_fault, ProcessFaultInput("chaos-1", fault))
    [victim] = state.processes
    assert (victim.pid, victim.cwd, victim.marker, state.signal) == (
        pid,
        str(target.folder),
        MARKER,
        "SIGKILL",
    )
    assert victim.argv[1:3] == ["-c", _CHILD] and SECRET not in json.dumps(asdict(state))
    ledger = LedgerStore(tmp_path / "chaos-state").path("chaos-1")
    assert ledger.stat().st_mode & 0o777 == 0o600 and SECRET in ledger.read_text()
    await gone(pid, victim.started)

    undo = ProcessRollbackInput("chaos-1", fault, state)
    result: ProcessRollbackResult = await run(activities.roll_back_process_fault, undo)
    [restored] = result.processes
    assert restored.action == RESTARTED and restored.new_pid not in (None, pid)
    started = await target.lines("start", count=2)
    assert started[1] == f"start {restored.new_pid} {target.folder} {SECRET}"
    argv = Path(f"/proc/{restored.new_pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in argv] == victim.argv

    # A retry, even on a worker that restarted (nothing in memory), starts no second copy.
    for worker in (activities, chaos(tmp_path)):
        again: ProcessRollbackResult = await run(worker.roll_back_process_fault, undo)
        assert again.processes[0].new_pid == restored.new_pid
    await asyncio.sleep(0.3)
    assert len(await target.lines("start")) == 2


async def test_a_rollback_retried_after_a_crash_mid_restart_starts_no_second_copy(
    tmp_path: Path, target: Target
) -> None:
    await target.start()
    activities, fault = chaos(tmp_path), params(target)
    state = await run(activities.inject_process_fault, ProcessFaultInput("chaos-2", fault))
    await gone(state.processes[0].pid, state.processes[0].started)
    # The worker died after starting the process but before recording the outcome.
    victim, running = await activities._update("chaos-2", lambda ledger: activities._start_once(ledger, 0))
    assert running is None and victim.outcome is None, "started just now, and not recorded as done"

    after_crash = chaos(tmp_path)
    result = await run(after_crash.roll_back_process_fault, ProcessRollbackInput("chaos-2", fault, None))
    assert (result.processes[0].action, result.processes[0].new_pid) == (RESTARTED, victim.restart_pid)
    assert "earlier attempt" in result.processes[0].note
    await asyncio.sleep(0.3)
    assert len(await target.lines("start")) == 2


async def test_a_stopped_process_is_continued(tmp_path: Path, target: Target) -> None:
    pid = await target.start()
    activities, fault = chaos(tmp_path), params(target, signal="SIGSTOP")
    inject = ProcessFaultInput("chaos-3", fault)
    state = await run(activities.inject_process_fault, inject)
    started = state.processes[0].started
    # SIGSTOP takes effect when the kernel next schedules the process: on a busy machine, a moment later.
    async with asyncio.timeout(5):
        while state_of(pid, started) != "T":
            await asyncio.sleep(0.02)
    assert state_of(pid, started) == "T"
    assert (await run(activities.inject_process_fault, inject)) == state

    # The ledger was lost (another machine's state folder, say): the injection's result suffices.
    LedgerStore(tmp_path / "chaos-state").path("chaos-3").unlink()
    result = await run(activities.roll_back_process_fault, ProcessRollbackInput("chaos-3", fault, state))
    assert [(p.pid, p.action) for p in result.processes] == [(pid, CONTINUED)]
    assert state_of(pid, started) in ("R", "S")


async def test_a_retried_injection_signals_once_and_never_picks_a_new_victim(
    tmp_path: Path, target: Target
) -> None:
    pid = await target.start(CHAOS_STUBBORN="1")
    activities, fault = chaos(tmp_path), params(target, signal="term", ready_timeout_s=0.3)
    inject = ProcessFaultInput("chaos-4", process_params_from_dict(asdict(fault)))
    for _ in range(3):
        state = await run(activities.inject_process_fault, inject)
    await asyncio.sleep(0.2)
    assert await target.lines("SIGTERM") == [f"SIGTERM {pid}"]

    # The victim ignored SIGTERM and still runs: the rollback does not start a second copy.
    result = await run(activities.roll_back_process_fault, ProcessRollbackInput("chaos-4", fault, state))
    assert result.processes[0].action == RUNNING and result.processes[0].new_pid is None
    assert len(await target.lines("start")) == 1

    # Killed, then a newcomer with the same command line (a supervisor's doing, say).
    kill = ProcessFaultInput("chaos-5", params(target))
    first = await run(activities.inject_process_fault, kill)
    await gone(pid, first.processes[0].started)
    newcomer = await target.start()
    assert await run(activities.inject_process_fault, kill) == first
    await asyncio.sleep(0.2)
    assert read_process(newcomer).state in ("R", "S"), "the newcomer was left alone"
    # It runs the victim's very command: the rollback counts it as the victim's replacement.
    result = await run(activities.roll_back_process_fault, ProcessRollbackInput("chaos-5", kill.params))
    assert (result.processes[0].action, result.processes[0].new_pid) == (REPLACED, newcomer)
    assert len(await target.lines("start")) == 2


async def test_a_rollback_with_nothing_to_undo_says_so_and_blocks_a_late_injection(
    tmp_path: Path, target: Target
) -> None:
    pid = await target.start()
    activities, fault = chaos(tmp_path), params(target)
    result = await run(activities.roll_back_process_fault, ProcessRollbackInput("chaos-6", fault))
    assert result.processes == [] and "nothing to undo" in result.note

    late = await failure(activities.inject_process_fault, ProcessFaultInput("chaos-6", fault))
    assert late.type == PROCESS_FAULT_REFUSED and "being rolled back" in str(late)
    assert (await target.lines("start")) == [f"start {pid} {target.folder} {SECRET}"]


async def test_a_process_that_cannot_start_again_fails_the_rollback(tmp_path: Path, target: Target) -> None:
    await target.start()
    activities, fault = chaos(tmp_path), params(target)
    state = await run(activities.inject_process_fault, ProcessFaultInput("chaos-7", fault))
    (target.folder / "once").touch()
    failed = await failure(activities.roll_back_process_fault, ProcessRollbackInput("chaos-7", fault, state))
    assert failed.type == PROCESS_RESTART_FAILED
    assert "after 3 attempts" in str(failed) and "exited" in str(failed)


async def test_a_killed_process_whose_ledger_was_lost_is_not_started_blind(
    tmp_path: Path, target: Target
) -> None:
    await target.start()
    activities, fault = chaos(tmp_path), params(target)
    state = await run(activities.inject_process_fault, ProcessFaultInput("chaos-11", fault))
    LedgerStore(tmp_path / "chaos-state").path("chaos-11").unlink()
    failed = await failure(activities.roll_back_process_fault, ProcessRollbackInput("chaos-11", fault, state))
    assert failed.type == PROCESS_RESTART_FAILED and "its environment was never recorded" in str(failed)
    assert len(await target.lines("start")) == 1


@pytest.mark.parametrize(
    ("markers", "match", "reason"),
    [
        ((), None, "process faults are switched off"),
        (("examples.shop",), None, "holds none of CRUCIBLE_FAULT_PROCESSES (examples.shop)"),
        ((MARKER,), "no-such-process-anywhere", "no process's command line holds"),
    ],
)
async def test_refusals(
    tmp_path: Path, target: Target, markers: tuple[str, ...], match: str | None, reason: str
) -> None:
    await target.start()
    fault = ProcessFaultParams(match or target.match)
    refused = await failure(chaos(tmp_path, markers).inject_process_fault, ProcessFaultInput("c-8", fault))
    assert refused.type == PROCESS_FAULT_REFUSED and reason in str(refused)


def test_the_worker_and_its_ancestors_are_never_victims() -> None:
    # Only looks: an injection with markers this broad could signal other people's processes.
    own = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    try:
        found = find_victims(own, ("pytest", "python"))
    except ProcessRefused as refused:
        assert "is the worker or one of its ancestors" in str(refused)
        found = []
    assert not {view.pid for view, _ in found} & lineage()


async def test_more_matches_than_allowed_are_refused(tmp_path: Path, target: Target) -> None:
    pids = [await target.start(), await target.start()]
    refused = await failure(chaos(tmp_path).inject_process_fault, ProcessFaultInput("c-9", params(target)))
    assert f"2 processes match {target.match!r} (pids {pids[0]}, {pids[1]})" in str(refused)
    both = params(target, signal="SIGSTOP", max_processes=2)
    state = await run(chaos(tmp_path).inject_process_fault, ProcessFaultInput("c-10", both))
    assert sorted(p.pid for p in state.processes) == sorted(pids)
    result = await run(chaos(tmp_path).roll_back_process_fault, ProcessRollbackInput("c-10", both, state))
    assert [p.action for p in result.processes] == [CONTINUED, CONTINUED]


def test_params_from_a_dict() -> None:
    assert process_params_from_dict({"match": "shop", "signal": "stop", "max_processes": 2}) == (
        ProcessFaultParams("shop", "SIGSTOP", max_processes=2)
    )
    with pytest.raises(InvalidRequestError) as caught:
        process_params_from_dict(
            {"signal": "SIGUSR1", "restart": "yes", "max_processes": 0, "ready_timeout_s": "x", "pid": 4}
        )
    assert {(e.loc[-1], e.type) for e in caught.value.errors} == {
        ("pid", "extra_forbidden"),
        ("match", "missing"),
        ("signal", "value_error"),
        ("restart", "type_error"),
        ("max_processes", "value_error"),
        ("ready_timeout_s", "type_error"),
    }
    assert all(e.loc[:3] == ("body", "fault", "params") for e in caught.value.errors)
