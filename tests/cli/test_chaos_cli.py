"""`crucible chaos …` against the real API and workers: refusals, the review, an abort, and one
experiment run to its verdict through a real chaos proxy process (HTTP SLOs: no Prometheus)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import Result

from crucible.core.auth.bootstrap import DEV_ADMIN_EMAIL
from examples.demo_target.app import create_app as create_target
from tests.cli.conftest import token_of
from tests.conftest import REVIEWER
from tests.support.chaos import ChaosProxyProcess
from tests.support.dev import Child
from tests.support.qa import serving, wait_closed
from tests.support.servers import ApiServer

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

Cli = Callable[..., Awaitable[Result]]

#: Nothing listens on the discard port: a proxy there cannot be reached, an SLO there is red.
CLOSED = "http://127.0.0.1:9"


def experiment(slo_url: str, **changes: Any) -> dict[str, Any]:
    """A proxy latency experiment with one HTTP SLO and no PromQL (no Prometheus needed)."""
    return {
        "name": "checkout latency",
        "target": "http://127.0.0.1:9/",
        "fault": {
            "provider": "proxy",
            "params": {"proxy": "shop", "control_url": f"{CLOSED}/", "fault": {"type": "latency", "ms": 200}},
        },
        "duration_s": 1,
        "monitoring_interval_s": 0.5,
        "baseline_window_s": 0.5,
        "recovery_timeout_s": 5,
        "slos": [{"name": "up", "kind": "http", "http": {"url": slo_url, "timeout_s": 2}}],
        "preflight": {"alerts_query": "", "warmup_s": 0},
        **changes,
    }


def write(tmp_path: Path, body: dict[str, Any], name: str = "experiment.yaml") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body) if name.endswith(".json") else yaml.safe_dump(body))
    return str(path)


def lines_of(output: str, label: str) -> list[str]:
    """The lines a followed experiment printed under one label, without it."""
    return [line.removeprefix(label).strip() for line in output.splitlines() if line.startswith(f"{label} ")]


async def test_an_invalid_experiment_is_refused_field_by_field_with_exit_2(cli: Cli, tmp_path: Path) -> None:
    body = experiment(f"{CLOSED}/")
    del body["slos"]
    body["fault"]["params"]["fault"] = "slow"
    refused = await cli("chaos", "create", "--file", write(tmp_path, body))

    assert refused.exit_code == 2, refused.output
    assert "the API refused the experiment in" in refused.output
    assert "  --file (slos): Field required" in refused.output

    missing = await cli("chaos", "create", "--file", str(tmp_path / "nowhere.yaml"))
    assert missing.exit_code == 2 and "no such file" in missing.output


async def test_import_names_the_option_of_a_refused_override(cli: Cli, tmp_path: Path) -> None:
    ctk = {"title": "t", "method": [], "controls": [{"name": "c"}]}
    path = write(tmp_path, ctk, "ctk.json")

    bad_key = await cli("chaos", "import", "--file", path, "--override", "colour=1")
    assert bad_key.exit_code == 2, bad_key.output
    assert "--override colour (overrides.colour): cannot be overridden" in bad_key.output
    bad_value = await cli("chaos", "import", "--file", path, "--interval", "0.1")
    # Each override is checked at its own field, so the option that gave it is named.
    assert bad_value.exit_code == 2, bad_value.output
    assert "--interval (overrides.monitoring_interval_s)" in bad_value.output
    unsupported = await cli("chaos", "import", "--file", path, "--target", "shop", "--duration", "5")
    assert unsupported.exit_code == 2, unsupported.output
    assert "--file (experiment.controls): controls are not supported" in unsupported.output
    twice = await cli("chaos", "import", "--file", path, "--target", "a", "--override", "target=b")
    assert twice.exit_code == 2 and "target is given twice (or --target)" in twice.output
    no_equals = await cli("chaos", "import", "--file", path, "--override", "target")
    assert no_equals.exit_code == 2 and "give key=value" in no_equals.output


async def test_following_a_draft_says_how_to_review_it_and_a_blocked_preflight_exits_3(
    cli: Cli, env: dict[str, str], tmp_path: Path, reviewer_headers: dict[str, str]
) -> None:
    # The SLO's endpoint does not answer: the pre-flight blocks before anything is injected.
    reviewer = token_of(reviewer_headers)
    file = write(tmp_path, experiment(f"{CLOSED}/"))
    child = await Child.start("chaos", "create", "--file", file, env={**os.environ, **env})
    try:
        run_id = (await child.wait_for(r"then another admin: +crucible chaos approve (chaos-\S+)$"))[1]
        assert f"submit it:             crucible chaos submit {run_id}" in child.output

        early = await cli("chaos", "request-changes", run_id, token=reviewer)
        assert early.exit_code == 3, early.output
        assert f"request_changes applies in UnderReview; {run_id} is in Draft" in early.output
        submitted = await cli("chaos", "submit", run_id, "--comment", "ready")
        assert submitted.exit_code == 0, submitted.output
        assert f"{run_id}: submitted for review by {DEV_ADMIN_EMAIL}" in submitted.output
        await child.wait_for(r"^UnderReview ")
        own = await cli("chaos", "approve", run_id)
        assert own.exit_code == 3, own.output
        assert (
            f"403 from POST /api/v1/chaos-experiments/{run_id}/approve: {DEV_ADMIN_EMAIL} submitted"
            in own.output
        )
        approved = await cli("chaos", "approve", run_id, "--comment", "go", token=reviewer)
        assert approved.exit_code == 0, approved.output
        assert f"{run_id}: approved by {REVIEWER}" in approved.output

        assert await child.wait(timeout=30) == 3, child.output
    finally:
        await child.kill()
    out = child.output
    assert lines_of(out, "UnderReview") == [f"by {DEV_ADMIN_EMAIL}; “ready”"]
    assert f"approve it (an admin other than {DEV_ADMIN_EMAIL}): crucible chaos approve {run_id}" in out
    assert lines_of(out, "Approved") == [f"by {REVIEWER}; “go”"]
    (sample,) = lines_of(out, "preflight 1")
    assert sample.startswith("up - BREACH (GET http://127.0.0.1:9/ failed: "), sample
    assert lines_of(out, "pre-flight") == ["blocked: SLOs are not met now: up"]
    assert lines_of(out, "Blocked") == ["SLOs are not met now: up"]
    assert not lines_of(out, "fault injected"), "a blocked experiment injects nothing"
    assert "error: the experiment did not run: Blocked: SLOs are not met now: up" in out
    assert re.search(rf"^run: +{run_id} \(COMPLETED\)$", out, re.MULTILINE), out


async def test_an_experiment_aborted_in_review_ends_aborted_and_shows_and_reports(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await cli("chaos", "create", "--no-follow", "--file", write(tmp_path, experiment(f"{CLOSED}/")))
    assert created.exit_code == 0, created.output
    run_id = created.output.splitlines()[0]
    assert run_id.startswith("chaos-")
    assert "state:     Draft\n" in created.output
    assert f"crucible chaos submit {run_id}\n" in created.output

    aborted = await cli("chaos", "abort", run_id, "--json")
    assert aborted.exit_code == 0, aborted.output
    assert json.loads(aborted.output) == {
        "run_id": run_id,
        "signal": "abort",
        "state": "Draft",
        "by": DEV_ADMIN_EMAIL,
    }
    run = await wait_closed(api, run_id, timeout=20)
    assert (run["state"], run["verdict"]) == ("Aborted", None)

    shown = await cli("chaos", "show", run_id)
    assert shown.exit_code == 0, shown.output
    assert re.search(
        r"^fault: +proxy shop: latency ms=200 .*for 1 s, sampled every 0.5 s$", shown.output, re.MULTILINE
    )
    assert "state:     Aborted (COMPLETED)" in shown.output
    assert "reason:    aborted during review" in shown.output
    assert f"/api/v1/runs/{run_id}/report?format=html" in shown.output
    watched = await cli("chaos", "watch", run_id)
    assert watched.exit_code == 3, watched.output
    assert "waiting for its review" not in watched.output, "past review states give no hints"
    assert "the experiment did not run: Aborted: aborted during review" in watched.output

    junit = tmp_path / "chaos.xml"
    reported = await cli("chaos", "report", run_id, "--format", "junit", "--output", str(junit))
    assert reported.exit_code == 0, reported.output
    assert junit.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    late = await cli("chaos", "abort", run_id)
    assert late.exit_code == 3, late.output
    unknown = await cli("chaos", "show", "chaos-nosuchrun")
    assert unknown.exit_code == 3 and "404" in unknown.output


@pytest.fixture
async def proxied_target() -> AsyncIterator[tuple[ChaosProxyProcess, str, str]]:
    """The demo target behind a proxy of a real chaos proxy process: the proxy and its address."""
    proxy = await ChaosProxyProcess.start()
    try:
        async with serving(create_target()) as target:
            assert isinstance(target, ApiServer)
            name, listen = await proxy.proxy_to(target.port)
            yield proxy, name, listen
    finally:
        await proxy.stop()


async def approved(cli: Cli, tmp_path: Path, body: dict[str, Any], reviewer: dict[str, str]) -> str:
    """Create the experiment, submit it, and approve it as ``reviewer``; its run id."""
    created = await cli("chaos", "create", "--no-follow", "--file", write(tmp_path, body))
    run_id = created.output.splitlines()[0]
    assert (await cli("chaos", "submit", run_id)).exit_code == 0
    for _ in range(50):  # the submit signal lands asynchronously
        approval = await cli("chaos", "approve", run_id, token=token_of(reviewer))
        if approval.exit_code == 0 or "is in Draft" not in approval.output:
            break
    assert approval.exit_code == 0, approval.output
    return run_id


def through_proxy(
    proxied: tuple[ChaosProxyProcess, str, str], *, ms: int, slo_timeout_s: float
) -> dict[str, Any]:
    """A latency of ``ms`` on the proxy; the SLO: the target's health answers through it in time."""
    proxy, name, listen = proxied
    body = experiment(f"http://{listen}/health", target=f"http://{listen}")
    body["slos"][0]["http"]["timeout_s"] = slo_timeout_s
    body["fault"]["params"] = {
        "proxy": name,
        "control_url": proxy.url,
        "fault": {"type": "latency", "ms": ms},
    }
    return body


async def test_an_experiment_runs_to_a_confirmed_hypothesis_and_shows_its_results(
    cli: Cli,
    tmp_path: Path,
    proxied_target: tuple[ChaosProxyProcess, str, str],
    reviewer_headers: dict[str, str],
) -> None:
    proxy, name, _ = proxied_target
    run_id = await approved(
        cli, tmp_path, through_proxy(proxied_target, ms=100, slo_timeout_s=2), reviewer_headers
    )

    ran = await cli("chaos", "watch", run_id)
    assert ran.exit_code == 0, ran.output
    out = ran.output
    assert lines_of(out, "pre-flight") == ["ok"]
    assert lines_of(out, "baseline 1") == ["up 200 ok"]
    (injected,) = lines_of(out, "fault injected")
    assert injected.startswith(f"proxy {name}: latency ms=100"), injected
    assert lines_of(out, "chaos 1") == ["up 200 ok"]
    assert lines_of(out, "rolled back") == [f"proxy {name}: fault removed"]
    assert lines_of(out, "Validated")[0].startswith("recovered ")
    assert "\nHypothesisConfirmed\n" in out
    assert re.search(r"^recovery:  [\d.]+ s after the rollback$", out, re.MULTILINE), out
    assert await proxy.faults(name) == [], "the fault is gone"

    shown = await cli("chaos", "show", run_id)
    assert "verdict:   HypothesisConfirmed" in shown.output
    header = next(line for line in shown.output.splitlines() if line.startswith("SLO "))
    assert header.split() == ["SLO", "TARGET", "BASELINE", "CHAOS", "WORST", "RECOVERY", "MET"]
    row = next(line for line in shown.output.splitlines() if line.startswith("up "))
    assert row.split()[-4:] == ["200", "200", "200", "yes"], row

    reported = await cli("chaos", "report", run_id)
    assert reported.exit_code == 0, reported.output
    report = json.loads(reported.output)
    assert report["verdict"] == "HypothesisConfirmed" and report["results"][0]["chaos_met"] is True


async def test_an_slo_breach_aborts_rolls_back_and_exits_1(
    cli: Cli,
    tmp_path: Path,
    proxied_target: tuple[ChaosProxyProcess, str, str],
    reviewer_headers: dict[str, str],
) -> None:
    proxy, name, _ = proxied_target
    run_id = await approved(
        cli, tmp_path, through_proxy(proxied_target, ms=1500, slo_timeout_s=1), reviewer_headers
    )

    ran = await cli("chaos", "watch", run_id)
    assert ran.exit_code == 1, ran.output
    out = ran.output
    assert lines_of(out, "baseline 1") == ["up 200 ok"]
    (breach,) = lines_of(out, "chaos 1")
    assert breach.startswith("up - BREACH ("), breach
    assert not lines_of(out, "chaos 2"), "the first breach aborts"
    assert lines_of(out, "Aborted") == ["slo_breach: up"]
    assert lines_of(out, "rolled back") == [f"proxy {name}: fault removed"]
    assert "\nHypothesisRejected\n" in out
    assert "error: the hypothesis was rejected: slo_breach" in out
    assert await proxy.faults(name) == [], "the fault is gone"
