"""Schemathesis against a `crucible dev --demo` stack, running beside the rest of the suite.

The run takes minutes, most of them Schemathesis and the API working while other tests
wait on timers, so tests/conftest.py starts it as soon as the session has collected its
test (tests/stack/test_schemathesis.py), in a thread with an event loop of its own, and the
test collects the result. On its own, the test starts it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.dev import Child, dev_environment

SEED = 42
EXAMPLES = 100
ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "tests" / "stack" / "schemathesis.toml"
HOOKS = "tests.stack.schemathesis_hooks"
#: The halves of the document, by path: each family's links (a created run, then its events)
#: stay within one half.
RUN_FAMILIES = "^/api/v1/(runs|qa-runs|batch-jobs|chaos-experiments)"
HALVES = {"runs": ["--include-path-regex", RUN_FAMILIES], "rest": ["--exclude-path-regex", RUN_FAMILIES]}
#: What each half gives back: Schemathesis's output and its JSON report.
Half = tuple[str, dict[str, Any]]
#: How long one half may take. Alone on 2 cores a half takes 4 to 7 minutes, by the machine's
#: speed; beside the rest of the suite, longer.
HALF_TIMEOUT_S = 900
#: The test that asks for the run's result.
TEST_NAME = "test_schemathesis_finds_nothing_in_the_api"


def schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    assert found, "schemathesis is a test dependency: pip install -e '.[test]'"
    return found


async def run_against_dev_stack(folder: Path) -> dict[str, Half]:
    """Start `crucible dev --demo` in ``folder``, run Schemathesis on it, stop it.

    The stack's quotas are lifted, and its targets are the demo targets only: the runs
    Schemathesis starts are real, and what they call is the demo target or a refusal.
    """
    home = folder / "state"
    env = dev_environment(home)
    env |= {
        "CRUCIBLE_QUOTA_CONCURRENT_RUNS": "",
        "CRUCIBLE_QUOTA_RUNS_PER_DAY": "",
        "CRUCIBLE_CHAOS_COMMANDS": "echo",  # the hooks' one allowed command
        "CRUCIBLE_TARGET_DEFAULTS": "false",
        "CRUCIBLE_TARGET_HOSTS": "127.0.0.1",
        "CRUCIBLE_TARGET_PORTS": ",".join(env[f"CRUCIBLE_{name}_PORT"] for name in ("DEMO", "DEMO_PROXY")),
    }
    api = f"http://127.0.0.1:{env['CRUCIBLE_API_PORT']}"
    dev = await Child.start("dev", "--demo", env=env)
    try:
        await dev.wait_for(r"^Crucible is up\.", timeout=120)
        token = (home / "dev-token").read_text().strip()
        # Two processes, each over one half of the operations (links stay within a half): one
        # process with two worker threads can trip CPython 3.11's "AST constructor recursion
        # depth mismatch" inside Hypothesis, and one thread alone takes twice as long.
        halves = await asyncio.gather(
            *(run_half(api, token, folder / name, half) for name, half in HALVES.items())
        )
    finally:
        await dev.kill()
    return dict(zip(HALVES, halves, strict=True))


async def run_half(api: str, token: str, folder: Path, half: list[str]) -> Half:
    """Schemathesis's output and its JSON report, for one half of the operations."""
    folder.mkdir()
    report = folder / "schemathesis.json"
    command = [
        schemathesis(),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api}/openapi.json",
        *half,
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--generation-allow-x00",
        "false",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    # The hooks that give Schemathesis the rules JSON Schema cannot state, from this checkout.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": path}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=HALF_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert report.exists(), text[-4000:]
    return text, json.loads(report.read_text())


class BackgroundRun:
    """`run_against_dev_stack` in a thread of its own, with an event loop of its own."""

    def __init__(self, folder: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(run_against_dev_stack(folder))
        self._outcome: dict[str, Half] | BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._main, name="schemathesis", daemon=True).start()

    def _main(self) -> None:
        try:
            self._outcome = self._loop.run_until_complete(self._task)
        except BaseException as exc:  # handed to the test that asks for the result
            self._outcome = exc
        finally:
            self._loop.close()
            self._done.set()

    def result(self, timeout: float) -> dict[str, Half]:
        """Each half's output and report, once the run is over."""
        if not self._done.wait(timeout):
            raise AssertionError(f"the Schemathesis run did not end within {timeout} s")
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        assert self._outcome is not None
        return self._outcome

    def stop(self) -> None:
        """Cancel the run if it is still going (the session is over), and wait for its clean-up."""
        if not self._done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                self._loop.call_soon_threadsafe(self._task.cancel)
            self._done.wait(60)


#: Where a session keeps the run it started.
RUN = pytest.StashKey[BackgroundRun]()
