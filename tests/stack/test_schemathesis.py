"""Schemathesis against Crucible's own API: its OpenAPI document, a real stack, real runs.

`crucible dev --demo` runs the whole stack with its quotas lifted, and targets limited to the
demo targets: the runs Schemathesis starts are real, and what they call is the demo target or
a refusal. Schemathesis runs every phase with its default checks, a fixed seed and 100
examples per operation, signed in with the dev token, and must find nothing.

Two settings differ from Schemathesis's defaults, each for a reason the API states itself:

* no NUL characters in generated strings: PostgreSQL text cannot hold them, and the API
  answers such a request with a 422 naming it (tests/api/test_errors.py);
* ``positive_data_acceptance`` is left out: the request models check more than their JSON
  schemas say (an inline spec must be an OpenAPI document, an http batch job needs a URL
  option, …), and each such refusal is a 422 that names the field and the reason. Bringing
  every rule into the schemas is open work.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.dev import Child, dev_environment

pytestmark = pytest.mark.timeout(600)

SEED = 42
EXAMPLES = 100


def schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    assert found, "schemathesis is a test dependency: pip install -e '.[test]'"
    return found


async def test_schemathesis_finds_nothing_in_the_api(tmp_path: Path) -> None:
    home = tmp_path / "state"
    env = dev_environment(home)
    env |= {
        "CRUCIBLE_QUOTA_CONCURRENT_RUNS": "",
        "CRUCIBLE_QUOTA_RUNS_PER_DAY": "",
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
            *(run_schemathesis(api, token, tmp_path / name, half) for name, half in HALVES.items())
        )
    finally:
        await dev.kill()
    selected = 0
    for (output, found), name in zip(halves, HALVES, strict=True):
        assert (found["failures"], found["errors"]) == ([], []), f"{name}:\n{output[-8000:]}"
        assert found["complete"] and found["exit_code"] == 0 and found["seed"] == SEED, output[-4000:]
        operations = found["operations"]
        assert operations["tested"] == operations["selected"] and operations["errored"] == 0
        phases = {name: phase["status"] for name, phase in found["phases"].items()}
        # Examples are skipped where the schemas give none; every other phase runs.
        assert phases.pop("examples") in ("success", "skip") and set(phases.values()) == {"success"}, phases
        assert found["test_cases"]["generated"] > operations["selected"] * EXAMPLES
        selected += operations["selected"]
    # Between them, the two halves tested every operation of the document.
    assert selected == found["operations"]["total"] >= 40


#: The halves of the document, by path: each family's links (a created run, then its events)
#: stay within one half.
RUN_FAMILIES = "^/api/v1/(runs|qa-runs|batch-jobs|chaos-experiments)"
HALVES = {"runs": ["--include-path-regex", RUN_FAMILIES], "rest": ["--exclude-path-regex", RUN_FAMILIES]}


async def run_schemathesis(api: str, token: str, folder: Path, half: list[str]) -> tuple[str, dict[str, Any]]:
    """Schemathesis's output and its JSON report, for one half of the operations."""
    folder.mkdir()
    report = folder / "schemathesis.json"
    command = [
        schemathesis(),
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
        "--exclude-checks",
        "positive_data_acceptance",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=480)
    text = output.decode(errors="replace")
    assert report.exists(), text[-4000:]
    return text, json.loads(report.read_text())
