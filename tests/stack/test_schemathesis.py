"""Schemathesis against Crucible's own API: its OpenAPI document, a real stack, real runs.

`crucible dev --demo` runs the whole stack with its quotas lifted, and targets limited to the
demo targets: the runs Schemathesis starts are real, and what they call is the demo target or
a refusal. Schemathesis runs every phase with its default checks, a fixed seed and 100
examples per operation, signed in with the dev token, and must find nothing.

The run starts with the session and goes on beside the other tests
(tests/support/schemathesis_run.py); this test collects its result. Where it differs from
Schemathesis's defaults, it says why:

* no NUL characters in generated strings: PostgreSQL text cannot hold them, and the API
  answers such a request with a 422 naming it (tests/api/test_errors.py);
* the rules JSON Schema cannot state (one field against another, a string read as a
  document, the server's command allowlist) are given to its generator as hooks
  (schemathesis_hooks.py), which mend each positive case that breaks one; the stack allows
  the one command the hooks use;
* a live run's event stream is read for its first event, not for 20: it stays open until
  the run ends (schemathesis.toml).
"""

from __future__ import annotations

import re

import pytest

from tests.support.schemathesis_run import EXAMPLES, HALF_TIMEOUT_S, RUN, SEED, BackgroundRun

pytestmark = pytest.mark.timeout(HALF_TIMEOUT_S + 60)


def test_schemathesis_finds_nothing_in_the_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stash = request.config.stash
    if RUN not in stash:  # tests/conftest.py did not start it with the session
        stash[RUN] = BackgroundRun(tmp_path_factory.mktemp("schemathesis"))
    halves = stash[RUN].result(timeout=HALF_TIMEOUT_S + 30)
    selected = 0
    for name, (output, found) in halves.items():
        print(f"{name}:", *re.findall(r"^ .*\(in [0-9.]+s\)$", output, re.MULTILINE), sep="\n")
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
