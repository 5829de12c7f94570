"""Making one `HttpCall` or `ProcessCall` of a chaos experiment, and judging what came back.

Chaos Toolkit probes and actions, and the ``http``/``process`` SLOs imported from them, all
come down to one request or one command. Neither function raises for an answer it does not
like: the answer is a `CallOutcome`, and the caller decides what a failure means.

CommandNotAllowedError   a command whose executable the allowlist does not hold (or cannot be found)

Commands run without a shell, in a session of their own (so a timeout kills the whole
group) and with a small environment: not the worker's, which holds its database URL and keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from crucible.core.chaos.model import HttpCall, ProcessCall
from crucible.core.errors import CrucibleError
from crucible.core.http import REQUEST_ERRORS

#: Bytes of a response body, stdout or stderr an outcome keeps.
EXCERPT_BYTES = 2048
#: Bytes of a response body read at most; the rest is left unread and the connection dropped.
MAX_BODY_BYTES = 1024 * 1024
#: How long output may keep flowing after a command ended (a daemon it started may hold the pipe).
OUTPUT_GRACE_S = 0.5
#: The only variables a command inherits from the worker.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")


class CommandNotAllowedError(CrucibleError):
    """A command whose executable is not on the ``chaos_commands`` allowlist."""

    def __init__(self, executable: str, reason: str) -> None:
        super().__init__(f"command {executable!r} is not allowed: {reason}")
        self.executable = executable
        self.reason = reason


@dataclass(frozen=True)
class _Resolved:
    path: str  # what to execute: the file found, links not followed
    real: str  # where its links lead
    name: str  # the name it is called by


def _resolve(executable: str) -> _Resolved | None:
    """Find ``executable`` the way the OS would run it: on PATH when it has no slash."""
    found = executable if "/" in executable else shutil.which(executable)
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        return None
    path = os.path.abspath(found)
    return _Resolved(path, os.path.realpath(path), os.path.basename(path))


@dataclass(frozen=True)
class CommandAllowlist:
    """The executables chaos actions and probes may run, by where their links lead.

    A command is allowed when its executable resolves (on PATH, or as a path, relative ones
    from the working directory) to a file that a listed entry resolves to, called by the same
    name as that entry or its target. The name counts because multi-call binaries (busybox)
    act on the name they are called by: listing ``true`` must not allow a link ``rm`` to the
    same file. Arguments are not restricted, so an interpreter on the list allows anything.
    """

    #: (real path, name) pairs that may run.
    allowed: frozenset[tuple[str, str]] = frozenset()
    #: The entries as the setting gave them, for messages.
    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, setting: str) -> CommandAllowlist:
        """Read the comma-separated ``chaos_commands`` setting.

        Names are looked up on PATH now; an entry that is neither on PATH nor an absolute path
        to an executable file allows nothing (and says so in refusals).
        """
        entries = tuple(e.strip() for e in setting.split(",") if e.strip())
        allowed: set[tuple[str, str]] = set()
        for entry in entries:
            if "/" in entry and not os.path.isabs(entry):
                continue  # a relative entry would mean something else in every working directory
            resolved = _resolve(entry)
            if resolved is not None:
                allowed.add((resolved.real, resolved.name))
                allowed.add((resolved.real, os.path.basename(resolved.real)))
        return cls(frozenset(allowed), entries)

    def resolve(self, command: list[str]) -> str:
        """The path to execute for ``command``; raises `CommandNotAllowedError` when it may not run."""
        if not command or not command[0]:
            raise CommandNotAllowedError("", "the command is empty")
        executable = command[0]
        resolved = _resolve(executable)
        if resolved is None:
            raise CommandNotAllowedError(executable, "no executable file by that name")
        if (resolved.real, resolved.name) not in self.allowed:
            listed = ", ".join(self.entries) or "nothing (chaos_commands is empty)"
            shown = executable if resolved.path == executable else f"{executable} ({resolved.real})"
            raise CommandNotAllowedError(executable, f"{shown} is not on the allowlist: {listed}")
        return resolved.path

    def check(self, command: list[str]) -> None:
        """Raise `CommandNotAllowedError`, naming the executable, unless ``command`` may run."""
        self.resolve(command)


@dataclass
class CallOutcome:
    """What one call came back with. ``value`` is what an SLO measures: a status or an exit code."""

    ok: bool
    value: int | None
    elapsed_ms: float
    #: Why it failed, on one line; empty when ``ok``.
    error: str = ""
    #: The response body (HTTP) or stdout (process), capped at `EXCERPT_BYTES`.
    output: str = ""
    #: Standard error of a process, capped likewise.
    stderr: str = ""
    #: Whether no answer came at all: a transport error, a timeout or a command that did not start.
    unanswered: bool = False
    #: What ``value`` is: ``HTTP`` (a status) or ``exit`` (an exit code).
    label: str = ""

    def summary(self) -> str:
        """One line for a measurement's note or an event: ``HTTP 200 in 12 ms``, or the error."""
        if self.error:
            return self.error
        return f"{self.label} {self.value} in {self.elapsed_ms:.0f} ms".strip()


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _text(data: bytes | bytearray) -> str:
    text = data[:EXCERPT_BYTES].decode("utf-8", "replace")
    return text + ("…" if len(data) > EXCERPT_BYTES else "")


def _expected(codes: Iterable[int], default: str) -> str:
    shown = sorted(set(codes))
    if not shown:
        return default
    if len(shown) > 6 and shown == list(range(shown[0], shown[-1] + 1)):
        return f"{shown[0]}-{shown[-1]}"
    return ", ".join(map(str, shown))


def _request_body(body: object) -> tuple[bytes | None, dict[str, str]]:
    if body is None:
        return None, {}
    if isinstance(body, str):
        return body.encode(), {}
    return json.dumps(body).encode(), {"content-type": "application/json"}


async def run_http_call(client: httpx.AsyncClient, call: HttpCall) -> CallOutcome:
    """Make ``call`` once: no redirects followed, ``call.timeout_s`` for the whole exchange.

    A string body is sent as it is; any other body as JSON (with a JSON content type unless
    the call's headers name one). The outcome is ``ok`` when the status is one of
    ``expected_status``, or below 400 when that list is empty.
    """
    content, headers = _request_body(call.body)
    if any(name.lower() == "content-type" for name in call.headers):
        headers = {}
    headers.update(call.headers)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(call.timeout_s):
            async with client.stream(
                call.method.upper(),
                call.url,
                headers=headers,
                timeout=call.timeout_s,
                content=content,
                follow_redirects=False,
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY_BYTES:
                        break
    except REQUEST_ERRORS as exc:  # OSError covers the TimeoutError of asyncio.timeout
        elapsed = _since(started)
        # The aiohttp transport reports a refused connection as a ConnectTimeout: trust the clock.
        if isinstance(exc, TimeoutError | httpx.TimeoutException) and elapsed >= call.timeout_s * 900:
            error = f"{call.method} {call.url} timed out after {call.timeout_s:g} s"
        else:
            error = f"{call.method} {call.url} failed: {str(exc) or type(exc).__name__}"
        return CallOutcome(False, None, elapsed, error, unanswered=True, label="HTTP")
    elapsed = _since(started)
    status = response.status_code
    ok = status in call.expected_status if call.expected_status else status < 400
    error = "" if ok else f"HTTP {status}, expected {_expected(call.expected_status, 'below 400')}"
    return CallOutcome(ok, status, elapsed, error, _text(bytes(body)), label="HTTP")


def _environment() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_ENV if name in os.environ}


class _Output:
    """A pipe a command writes to. Read here, not by asyncio's process transport, so the command's
    end is seen when it exits, even while a daemon it started still holds the pipe open."""

    def __init__(self) -> None:
        read_fd, self.write_fd = os.pipe()
        self._file = os.fdopen(read_fd, "rb", buffering=0)
        self._transport: asyncio.ReadTransport | None = None
        self.kept = bytearray()

    async def drain(self) -> None:
        """Keep up to `EXCERPT_BYTES` (and one more, to tell it was cut); read the rest to nowhere."""
        reader = asyncio.StreamReader()
        self._transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self._file
        )
        while chunk := await reader.read(65536):
            if len(self.kept) <= EXCERPT_BYTES:
                self.kept += chunk[: EXCERPT_BYTES + 1 - len(self.kept)]

    def spawned(self) -> None:
        """The command has its copy of the writing end; ours would keep the pipe open forever."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.spawned()
        if self._transport is not None:
            self._transport.close()
        else:
            self._file.close()


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_process_call(call: ProcessCall, allowlist: CommandAllowlist) -> CallOutcome:
    """Run ``call.command`` once, without a shell, killing its process group after ``call.timeout_s``.

    Raises `CommandNotAllowedError` before anything runs when the executable is not allowed.
    The outcome is ``ok`` when the exit code is one of ``expected_exit``; a process killed by
    a signal has the negative signal number as its exit code.
    """
    path = allowlist.resolve(call.command)
    shown = " ".join(call.command)
    stdout, stderr = _Output(), _Output()
    started = time.perf_counter()
    try:
        process = await asyncio.create_subprocess_exec(
            *call.command,
            executable=path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout.write_fd,
            stderr=stderr.write_fd,
            env=_environment(),
            start_new_session=True,
        )
    except OSError as exc:
        stdout.close()
        stderr.close()
        error = f"{shown} did not start: {exc}"
        return CallOutcome(False, None, _since(started), error, unanswered=True, label="exit")
    stdout.spawned()
    stderr.spawned()
    readers = asyncio.gather(stdout.drain(), stderr.drain())
    try:
        timed_out = await _wait(process, call.timeout_s)
        elapsed = _since(started)
        # Output still in the pipes is read; a daemon the command started may hold them for good.
        await asyncio.wait([readers], timeout=OUTPUT_GRACE_S)
    finally:
        readers.cancel()
        stdout.close()
        stderr.close()
    out, err = _text(stdout.kept), _text(stderr.kept)
    if timed_out:
        error = f"{shown} timed out after {call.timeout_s:g} s and was killed"
        return CallOutcome(False, None, elapsed, error, out, err, unanswered=True, label="exit")
    code = process.returncode
    assert code is not None
    ok = code in call.expected_exit
    error = "" if ok else f"{shown} exited {code}, expected {_expected(call.expected_exit, 'none')}"
    if not ok and err.strip():
        error += ": " + err.strip().splitlines()[-1][:200]
    return CallOutcome(ok, code, elapsed, error, out, err, label="exit")


async def _wait(process: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Wait for ``process`` to end; kill its group after ``timeout_s`` (or when cancelled)."""
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
        return False
    except TimeoutError:
        _kill_group(process)
        await process.wait()
        return True
    except BaseException:  # cancelled: leave nothing running behind
        _kill_group(process)
        raise
