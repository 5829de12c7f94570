"""`crucible sagas …` and `crucible saga-tests run` against the real API and workers, a small
local target and the demo shop."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import Result

from examples.shop import running_shop
from tests.support.dev import Child
from tests.support.qa import serving, wait_closed
from tests.support.saga_target import SagaTarget
from tests.support.sagas import shop_steps
from tests.support.servers import KafkaBroker

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

Cli = Callable[..., Awaitable[Result]]

EXAMPLES = Path(__file__).parents[2] / "examples" / "shop"


def saga_file(tmp_path: Path, steps: list[dict[str, Any]]) -> str:
    path = tmp_path / "saga.yaml"
    path.write_text(yaml.safe_dump({"name": "order", "steps": steps}))
    return str(path)


def lines_of(output: str, name: str) -> list[str]:
    """The lines a followed saga printed for one state or event, without the name."""
    return [line.removeprefix(name).strip() for line in output.splitlines() if line.startswith(f"{name} ")]


async def test_a_saga_whose_second_step_fails_exits_1_with_its_compensation(cli: Cli, tmp_path: Path) -> None:
    # A 400 is a definite refusal: step 2 took no effect, so only step 1 is compensated.
    target = SagaTarget(failing={"/stock/sku-1": 400})
    async with serving(target.app) as shop:
        ran = await cli("sagas", "run", "--file", saga_file(tmp_path, shop_steps(shop.url)[:3]))

    assert ran.exit_code == 1, ran.output
    (completed,) = lines_of(ran.output, "Step1_Completed")
    assert completed.startswith("step 1 create order: 201, captured order_id"), completed
    (failed,) = lines_of(ran.output, "Step2_Failed")
    assert failed.startswith("step 2 reserve stock: POST ") and "answered 400" in failed
    assert failed.endswith("(attempt 1)"), "a refusal is not retried"
    assert not lines_of(ran.output, "Step3_Pending"), "no step after the failed one ran"
    assert lines_of(ran.output, "Compensating") == ["step 2 failed; compensating step 1"]
    assert lines_of(ran.output, "STEP_COMPENSATED") == ["step 1 create order: 200"]
    assert lines_of(ran.output, "STEP_VERIFIED") == ["step 1 create order: passed"]
    assert lines_of(ran.output, "SagaCancelled") == ["completed step 1; step 2 failed"]
    summary = ran.output[ran.output.index("state: ") :]
    assert "state:             SagaCancelled (step 2 failed)\n" in summary
    assert "completed steps:   step 1 create order\n" in summary
    assert "compensations:\n  step 1 create order: compensated\n" in summary
    assert "restored:          yes\n" in summary
    assert re.search(r"^run: +saga-\S+ \(COMPLETED\)$", summary, re.MULTILINE), summary
    assert target.orders == {"o-1": "CANCELLED"}


async def test_a_saga_in_manual_intervention_says_how_to_resolve_it_and_exits_3_once_marked_resolved(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    # Step 2 is refused at once; cancelling the order fails until someone steps in.
    target = SagaTarget(failing={"/stock/sku-1": 400, "/orders/o-1": 500})
    async with serving(target.app) as shop:
        file = saga_file(tmp_path, shop_steps(shop.url)[:2])
        child = await Child.start("sagas", "run", "--file", file, env={**os.environ, **env})
        run_id = (await child.wait_for(r"crucible sagas resolve (saga-\S+) --mark-resolved --note"))[1]
        assert f"crucible sagas resolve {run_id} --retry --note" in child.output

        neither = await cli("sagas", "resolve", run_id, "--note", "hm")
        assert neither.exit_code == 2 and "give one of --retry and --mark-resolved" in neither.output
        late = await cli("sagas", "abort", run_id)
        assert late.exit_code == 3 and "compensation has begun, an abort changes nothing" in late.output
        resolved = await cli("sagas", "resolve", run_id, "--mark-resolved", "--note", "cancelled o-1 by hand")
        assert resolved.exit_code == 0, resolved.output
        assert f"{run_id}: resolve sent for step 1: it counts as put right by hand" in resolved.output

        assert await child.wait(timeout=20) == 3, child.output
        again = await cli("sagas", "resolve", run_id, "--retry", "--note", "too late")
    assert lines_of(child.output, "ManualIntervention") == [
        "step 1 create order: its compensation keeps failing"
    ]
    assert lines_of(child.output, "INTERVENTION_RESOLVED") == [
        "step 1 create order: mark_resolved (cancelled o-1 by hand)"
    ]
    assert "  step 1 create order: marked resolved: cancelled o-1 by hand" in child.output
    assert "restored:          no: step 1: GET " in child.output, "the order was never cancelled"
    assert "step 1 was put right by hand, not compensated by the saga" in child.output
    assert again.exit_code == 3 and f"{run_id} has ended: COMPLETED, in state SagaCancelled" in again.output


async def test_ctrl_c_leaves_the_saga_running_and_says_how_to_abort_it(
    cli: Cli, env: dict[str, str], api: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = SagaTarget(slow={"/payments": 2})
    async with serving(target.app) as shop:
        file = saga_file(tmp_path, shop_steps(shop.url)[:3])
        child = await Child.start("sagas", "run", "--file", file, env={**os.environ, **env})
        run_id = (await child.wait_for(r"started (saga-\S+)"))[1]
        await child.wait_for(r"^Step3_InProgress")
        child.proc.send_signal(signal.SIGINT)
        assert await child.wait(timeout=20) == 130, child.output
        assert f"stopped following; {run_id} goes on" in child.output
        assert f"abort it:        crucible sagas abort {run_id}" in child.output

        aborted = await cli("sagas", "abort", run_id, "--reason", "customer called")
        assert aborted.exit_code == 0, aborted.output
        run = await wait_closed(api, run_id, timeout=20)
    assert (run["status"], run["state"]) == ("COMPLETED", "SagaCancelled"), run
    assert (run["summary"]["stopped_by"], run["summary"]["reason"]) == ("abort", "customer called")
    assert [c["step"] for c in run["summary"]["compensations"]] == [3, 2, 1], "step 3 completed, then all"


async def test_the_example_saga_test_passes_against_the_demo_shop(
    cli: Cli, kafka: KafkaBroker, tmp_path: Path
) -> None:
    async with running_shop(kafka.bootstrap, topic_prefix=f"clitest-{uuid.uuid4().hex[:8]}") as shop:
        text = (EXAMPLES / "saga_test.json").read_text()
        for port, url in (("8101", shop.order_url), ("8102", shop.inventory_url), ("8103", shop.payment_url)):
            text = text.replace(f"http://127.0.0.1:{port}", url)
        body = {**json.loads(text), "topics": list(shop.topics.all), "settle_s": 1, "timeout_s": 15}
        (tmp_path / "test.yaml").write_text(yaml.safe_dump(body))
        ran = await cli("saga-tests", "run", "--file", str(tmp_path / "test.yaml"))

    assert ran.exit_code == 0, ran.output
    observed = re.findall(r"^observed +(\w+) ", ran.output, re.MULTILINE)
    assert observed == body["expected_events"]
    assert re.search(r"^fault +POST http://\S+/admin/faults: 200$", ran.output, re.MULTILINE), ran.output
    assert re.search(
        r"^triggered +POST http://\S+/orders: 201 in \d+ ms; correlation id \S+$", ran.output, re.MULTILINE
    )
    assert "✓ passed  expected_events_in_order: all 5 expected events, in order" in ran.output
    assert "✓ passed  fault_rolled_back: the fault was rolled back" in ran.output
    assert "✗" not in ran.output
    assert re.search(r"^PASSED  (\d+) of \1 assertions passed$", ran.output, re.MULTILINE), ran.output
    assert f"observed:       {' → '.join(body['expected_events'])}" in ran.output


async def test_bad_files_exit_2_naming_the_field_and_start_nothing(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    before = len((await api.get("/api/v1/runs", params={"kind": "saga", "limit": 500})).json()["items"])
    steps = shop_steps("http://127.0.0.1:9")[:2]
    steps[1]["action"]["http"]["url"] = "ftp://inventory/stock"
    refused = await cli("sagas", "run", "--file", saga_file(tmp_path, steps))
    assert refused.exit_code == 2, refused.output
    assert f"the API refused the saga in {tmp_path / 'saga.yaml'}" in refused.output
    assert "--file (steps.1.action.http.url): give an http or https URL" in refused.output

    (tmp_path / "test.json").write_text(json.dumps({"topics": [], "expected_events": ["A"]}))
    test = await cli("saga-tests", "run", "-f", str(tmp_path / "test.json"))
    assert test.exit_code == 2, test.output
    assert "--file (topics): List should have at least 1 item" in test.output
    assert "--file (trigger): Field required" in test.output
    (tmp_path / "broken.yaml").write_text("name: [order")
    broken = await cli("sagas", "run", "--file", str(tmp_path / "broken.yaml"))
    assert broken.exit_code == 2 and "is not valid JSON or YAML" in broken.output

    assert (
        len((await api.get("/api/v1/runs", params={"kind": "saga", "limit": 500})).json()["items"]) == before
    )
