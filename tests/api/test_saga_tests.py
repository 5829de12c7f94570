"""Saga tests through the API, against the demo shop on the session's Temporal, PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crucible.core.store import RunStore
from examples.shop import RunningShop, running_shop
from tests.support.fault_target import fault_target
from tests.support.qa import assert_contiguous, events_of, wait_closed
from tests.support.servers import KafkaBroker

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

SAGA = ["OrderCreated", "InventoryReserved", "PaymentFailed", "InventoryReleased", "OrderCancelled"]
TOKEN = "saga-test-s3cret"
#: In the command line of the processes these tests stop: the default CRUCIBLE_FAULT_PROCESSES.
MARKER = "examples.shop.fault-target"


@pytest.fixture
async def shop(kafka: KafkaBroker) -> AsyncIterator[RunningShop]:
    prefix = f"sagatest-{uuid.uuid4().hex[:8]}"
    async with running_shop(kafka.bootstrap, topic_prefix=prefix, release_wait_s=0.5) as s:
        yield s


@pytest.fixture
async def web() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def payment_fault(shop: RunningShop) -> dict[str, Any]:
    """Switch the shop's payment failure on for the test, and off again afterwards."""
    url = f"{shop.payment_url}/admin/faults"
    return {
        "http": {"method": "POST", "url": url, "body": {"fail_payments": True}},
        "rollback": {"method": "POST", "url": url, "body": {"fail_payments": False}},
    }


def saga_test(shop: RunningShop, **overrides: Any) -> dict[str, Any]:
    return {
        "topics": list(shop.topics.all),
        "trigger": {
            "method": "POST",
            "url": f"{shop.order_url}/orders",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "body": {"sku": "ITEM-1", "quantity": 2},
        },
        "correlation_from": "$.order_id",
        "expected_events": SAGA,
        "fault": payment_fault(shop),
        "settle_s": 1,
        "timeout_s": 15,
        "recovery_within_s": 30,
        **overrides,
    }


async def run_test(api: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = await api.post("/api/v1/saga-tests", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    assert run_id.startswith("sagatest-")
    return run_id, await wait_closed(api, run_id, timeout=45)


def by_name(assertions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in assertions}


async def payment_failing(web: httpx.AsyncClient, shop: RunningShop) -> bool:
    return bool((await web.get(f"{shop.payment_url}/admin/faults")).json()["fail_payments"])


async def test_a_compensating_saga_passes(
    api: httpx.AsyncClient, store: RunStore, shop: RunningShop, web: httpx.AsyncClient
) -> None:
    run_id, run = await run_test(api, saga_test(shop))

    assert (run["kind"], run["status"], run["verdict"]) == ("sagatest", "COMPLETED", "PASSED"), run
    summary = run["summary"]
    assert summary["observed"] == SAGA
    assertions = by_name(summary["assertions"])
    assert list(assertions) == [
        "trigger_accepted",
        "expected_events_in_order",
        "no_duplicates",
        "no_repeated_types",
        "compensation_complete",
        "recovery_within",
        "fault_rolled_back",
    ]
    assert all(a["passed"] for a in assertions.values()), assertions
    recovery = assertions["recovery_within"]["details"]
    assert (recovery["from"], recovery["to"]) == ("PaymentFailed", "OrderCancelled")
    assert 0 <= recovery["recovery_s"] < 30
    order_id = summary["correlation_id"]
    order = (await web.get(f"{shop.order_url}/orders/{order_id}")).json()
    assert order["status"] == "CANCELLED"
    assert not await payment_failing(web, shop), "the fault was rolled back"

    events = await events_of(store, run_id)
    assert_contiguous(events)
    types = [e.type for e in events]
    assert types == [
        "REQUESTED",
        "SUBSCRIBED",
        "FAULT_INJECTED",
        "TRIGGERED",
        *["EVENT_OBSERVED"] * 5,
        "FAULT_ROLLED_BACK",
        *["ASSERTION_PASSED"] * 7,
        "COMPLETE",
    ]
    offsets = events[1].data["offsets"]
    assert set(offsets) == set(shop.topics.all) and all(offsets.values())
    assert events[3].data["status"] == 201 and events[3].data["correlation_id"] == order_id
    observed = [e.data for e in events if e.type == "EVENT_OBSERVED"]
    assert [o["type"] for o in observed] == SAGA
    assert all(o["key"] == order_id and o["topic"] in shop.topics.all for o in observed)
    assert events[-1].data["verdict"] == "PASSED" and events[-1].data["failed"] == []
    assert TOKEN not in json.dumps([e.envelope() for e in events]), "header values are secrets"
    assert events[0].data["trigger"]["header_names"] == ["Authorization"]


async def test_a_saga_that_does_not_compensate_fails_and_names_the_missing_event(
    api: httpx.AsyncClient, store: RunStore, shop: RunningShop, web: httpx.AsyncClient
) -> None:
    for base in (shop.inventory_url, shop.order_url):
        (await web.post(f"{base}/admin/faults", json={"compensation": False})).raise_for_status()

    run_id, run = await run_test(api, saga_test(shop, timeout_s=3))

    assert (run["status"], run["verdict"]) == ("COMPLETED", "FAILED"), run
    assertions = by_name(run["summary"]["assertions"])
    order = assertions["expected_events_in_order"]
    assert not order["passed"]
    assert order["reason"] == "InventoryReleased was not observed (expected after PaymentFailed)"
    assert order["details"]["missing"] == ["InventoryReleased", "OrderCancelled"]
    compensation = assertions["compensation_complete"]
    assert not compensation["passed"] and "InventoryReleased" in compensation["reason"]
    assert not assertions["recovery_within"]["passed"]
    assert assertions["no_duplicates"]["passed"] and assertions["trigger_accepted"]["passed"]
    assert run["summary"]["observed"] == SAGA[:3] and run["summary"]["timed_out"] is True
    # The fault's rollback ran although the test failed.
    assert assertions["fault_rolled_back"]["passed"]
    assert not await payment_failing(web, shop)

    events = await events_of(store, run_id)
    failed = [e.data["name"] for e in events if e.type == "ASSERTION_FAILED"]
    assert failed == ["expected_events_in_order", "compensation_complete", "recovery_within"]
    assert events[-1].type == "COMPLETE" and events[-1].data["verdict"] == "FAILED"
    assert events[-1].data["failed"][0].startswith("expected_events_in_order: InventoryReleased")


async def test_a_saga_test_with_a_process_fault_passes_and_continues_the_process(
    api: httpx.AsyncClient, store: RunStore, shop: RunningShop
) -> None:
    async with fault_target(MARKER) as target:
        fault = {**payment_fault(shop), "process": {"pid": target.pid, "signal": "SIGSTOP"}}
        run_id, run = await run_test(api, saga_test(shop, fault=fault))
        received = await target.received()

        assert (run["status"], run["verdict"]) == ("COMPLETED", "PASSED"), run
        assert run["summary"]["fault"] == "rolled back"
        assert received == ["SIGCONT"] and target.state() != "T", "stopped, then continued"
        events = await events_of(store, run_id)
        [injected] = [e.data for e in events if e.type == "FAULT_INJECTED"]
        assert injected["signalled"] and injected["inspected"]["pid"] == target.pid
        assert injected["inspected"]["marker"] == "examples.shop"
        rolled_back = [e.data for e in events if e.type == "FAULT_ROLLED_BACK"]
        assert rolled_back == [{"ok": True, "status": 200, "signalled": True, "note": None}]


async def test_cancelling_a_test_rolls_its_process_fault_back(
    api: httpx.AsyncClient, store: RunStore, shop: RunningShop
) -> None:
    async with fault_target(MARKER) as target:
        body = saga_test(
            shop,
            fault={"process": {"pid": target.pid, "signal": "SIGSTOP"}},
            expected_events=["OrderCreated", "NeverPublished"],
            timeout_s=60,
        )
        response = await api.post("/api/v1/saga-tests", json=body)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        async with asyncio.timeout(20):
            while "TRIGGERED" not in [e.type for e in await events_of(store, run_id)]:
                await asyncio.sleep(0.1)
        assert await target.stopped(), "the process is stopped"

        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        run = await wait_closed(api, run_id, timeout=20)

        assert run["status"] == "CANCELLED"
        assert target.state() != "T" and await target.received() == ["SIGCONT"], "the rollback continued it"
        events = await events_of(store, run_id)
        rolled_back = [e.data for e in events if e.type == "FAULT_ROLLED_BACK"]
        assert rolled_back == [{"ok": True, "status": None, "signalled": True, "note": None}]
        assert [e.type for e in events][-2:] == ["FAULT_ROLLED_BACK", "CANCELLED"]


async def test_invalid_tests_are_refused_with_every_error(api: httpx.AsyncClient) -> None:
    fields = {
        "topics": [],
        "trigger": {"url": "ftp://shop/orders"},
        "correlation_from": "order_id",
        "expected_events": ["OrderCreated"],
        "colour": "red",
    }
    response = await api.post("/api/v1/saga-tests", json=fields)
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert locs == {
        ("body", "topics"),
        ("body", "trigger", "url"),
        ("body", "correlation_from"),
        ("body", "colour"),
    }

    beyond = {
        **fields,
        "topics": ["shop.orders"],
        "trigger": {"url": "http://shop:99999/orders"},
        "correlation_from": "$.order_id",
        "fault": {"process": {"pid": 10**9}},
    }
    del beyond["colour"]
    response = await api.post("/api/v1/saga-tests", json=beyond)
    assert response.status_code == 422
    detail = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert set(detail) == {("body", "trigger", "url"), ("body", "fault", "process", "pid")}
    assert "invalid port" in detail[("body", "trigger", "url")]
    assert "/proc/sys/kernel/pid_max" in detail[("body", "fault", "process", "pid")]

    whole = {
        "topics": ["shop.orders"],
        "trigger": {"url": "http://127.0.0.1:9/orders"},
        "correlation_id": "ABC123",
        "correlation_from": "$.order_id",
        "expected_events": ["OrderCreated", "PaymentFailed"],
        "compensation_events": ["InventoryReleased"],
        "fault": {"rollback": {"signal": "SIGCONT"}},
    }
    response = await api.post("/api/v1/saga-tests", json=whole)
    assert response.status_code == 422
    detail = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert set(detail) == {
        ("body", "correlation_id"),
        ("body", "compensation_events", 0),
        ("body", "fault"),
        ("body", "fault", "rollback", "signal"),
    }
    assert "InventoryReleased" in detail[("body", "compensation_events", 0)]


async def test_a_topic_that_does_not_exist_fails_the_run_and_says_which(
    api: httpx.AsyncClient, store: RunStore, shop: RunningShop
) -> None:
    missing = f"sagatest-missing-{uuid.uuid4().hex[:8]}"
    body = saga_test(shop, topics=[shop.topics.orders, missing], fault=None)
    response = await api.post("/api/v1/saga-tests", json=body)
    assert response.status_code == 202, response.text
    run = await wait_closed(api, response.json()["run_id"], timeout=30)

    assert run["status"] == "FAILED" and run["verdict"] is None
    events = await events_of(store, run["run_id"])
    assert [e.type for e in events] == ["REQUESTED", "FAILED"]
    assert missing in events[-1].data["message"]
