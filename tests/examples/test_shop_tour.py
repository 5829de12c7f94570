"""The README's saga tour, as written in examples/shop, against the demo shop and the real stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.shop import RunningShop, running_shop
from tests.support.qa import wait_closed
from tests.support.servers import KafkaBroker

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(90)]

EXAMPLES = Path(__file__).parents[2] / "examples" / "shop"
#: The ports and topics the examples name, as `crucible dev --demo` serves them.
DEMO_PORTS = {"8101": "order_url", "8102": "inventory_url", "8103": "payment_url"}


@pytest.fixture
async def shop(kafka: KafkaBroker) -> AsyncIterator[RunningShop]:
    async with running_shop(kafka.bootstrap, topic_prefix=f"tour-{uuid.uuid4().hex[:8]}") as s:
        yield s


def example(name: str, shop: RunningShop) -> dict[str, Any]:
    """An example request, pointed at this test's shop instead of the demo's ports and topics."""
    text = (EXAMPLES / name).read_text()
    for port, attribute in DEMO_PORTS.items():
        text = text.replace(f"http://127.0.0.1:{port}", getattr(shop, attribute))
    body: dict[str, Any] = json.loads(text)
    if "topics" in body:
        prefix = shop.topics.orders.rsplit(".", 1)[0]
        body["topics"] = [topic.replace("shop.", f"{prefix}.", 1) for topic in body["topics"]]
    return body


async def test_the_example_saga_fails_at_payment_and_compensates(
    api: httpx.AsyncClient, shop: RunningShop
) -> None:
    async with httpx.AsyncClient(timeout=10) as web:
        await web.post(f"{shop.payment_url}/admin/faults", json={"fail_payments": True})
        started = await api.post("/api/v1/sagas", json=example("saga.json", shop))
        assert started.status_code == 202, started.text
        run = await wait_closed(api, started.json()["run_id"], timeout=60)
        records = (await web.get(f"{shop.inventory_url}/admin/records")).json()["records"]
    summary = run["summary"]
    assert (run["state"], summary["failed_step"], summary["restored"]) == ("SagaCancelled", 3, True)
    assert [c["step"] for c in summary["compensations"]] == [2, 1]
    releases = [r for r in records if r["kind"] == "compensation"]
    assert len(releases) == 1, "the reservation was released exactly once"


async def test_the_example_saga_test_passes(api: httpx.AsyncClient, shop: RunningShop) -> None:
    started = await api.post("/api/v1/saga-tests", json=example("saga_test.json", shop))
    assert started.status_code == 202, started.text
    run = await wait_closed(api, started.json()["run_id"], timeout=60)
    assert (run["status"], run["verdict"]) == ("COMPLETED", "PASSED"), run["summary"]
