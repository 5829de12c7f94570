"""The demo shop choreographs the order saga over the real broker, and its switches do what they say."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crucible.stack.services import free_port
from examples.shop import READY_PREFIX, RunningShop, running_shop
from tests.support.servers import KafkaBroker
from tests.support.shop import shop_events, types

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
RELEASE_WAIT_S = 0.5
SKU = "ITEM-1"
START_STOCK = 100


@pytest.fixture
async def shop(kafka: KafkaBroker) -> AsyncIterator[RunningShop]:
    prefix = f"shop-{uuid.uuid4().hex[:8]}"
    async with running_shop(kafka.bootstrap, topic_prefix=prefix, release_wait_s=RELEASE_WAIT_S) as s:
        yield s


@pytest.fixture
async def web() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def new_order_id() -> str:
    return f"ord-{uuid.uuid4().hex[:10]}"


async def post_json(web: httpx.AsyncClient, url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await web.post(url, json=body, headers=headers)


async def set_faults(web: httpx.AsyncClient, base: str, **switches: bool) -> None:
    (await web.post(f"{base}/admin/faults", json=switches)).raise_for_status()


async def records(web: httpx.AsyncClient, base: str, order_id: str) -> list[dict[str, Any]]:
    response = await web.get(f"{base}/admin/records", params={"order_id": order_id})
    response.raise_for_status()
    return list(response.json()["records"])


async def available(web: httpx.AsyncClient, shop: RunningShop) -> int:
    return int((await web.get(f"{shop.inventory_url}/stock/{SKU}")).json()["available"])


async def test_happy_path_confirms_the_order(kafka: KafkaBroker, shop: RunningShop, web: httpx.AsyncClient):
    order_id = new_order_id()
    body = {"order_id": order_id, "sku": SKU, "quantity": 2}
    first = await post_json(web, f"{shop.order_url}/orders", body, **{"Idempotency-Key": "k1"})
    again = await post_json(web, f"{shop.order_url}/orders", body, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["status"] == "PENDING" and first.json()["amount"] == 20.0
    assert again.headers["Idempotent-Replayed"] == "true"

    events = await shop_events(kafka.bootstrap, shop.topics, order_id, until={"OrderConfirmed"})

    assert types(events) == ["OrderCreated", "InventoryReserved", "PaymentSucceeded", "OrderConfirmed"]
    assert all(e["order_id"] == order_id and e["choreography"] is True for e in events)
    assert [e["service"] for e in events] == ["order", "inventory", "payment", "order"]
    assert events[1]["sku"] == SKU and events[1]["quantity"] == 2 and events[2]["amount"] == 20.0
    assert (await web.get(f"{shop.order_url}/orders/{order_id}")).json()["status"] == "CONFIRMED"
    assert await available(web, shop) == START_STOCK - 2
    actions = [(r["service"], r["name"], r["source"]) for r in await records(web, shop.order_url, order_id)]
    actions += [
        (r["service"], r["name"], r["source"]) for r in await records(web, shop.inventory_url, order_id)
    ]
    actions += [
        (r["service"], r["name"], r["source"]) for r in await records(web, shop.payment_url, order_id)
    ]
    assert actions == [
        ("order", "create_order", "http"),
        ("order", "confirm_order", "kafka"),
        ("inventory", "reserve_stock", "kafka"),
        ("payment", "charge_payment", "kafka"),
    ]


async def test_failed_payment_is_compensated(kafka: KafkaBroker, shop: RunningShop, web: httpx.AsyncClient):
    await set_faults(web, shop.payment_url, fail_payments=True)
    order_id = new_order_id()
    created = await post_json(
        web, f"{shop.order_url}/orders", {"order_id": order_id, "sku": SKU, "quantity": 3}
    )
    assert created.status_code == 201

    events = await shop_events(kafka.bootstrap, shop.topics, order_id, until={"OrderCancelled"})

    assert types(events) == [
        "OrderCreated",
        "InventoryReserved",
        "PaymentFailed",
        "InventoryReleased",
        "OrderCancelled",
    ]
    order = (await web.get(f"{shop.order_url}/orders/{order_id}")).json()
    assert order["status"] == "CANCELLED"
    assert await available(web, shop) == START_STOCK
    released = [r for r in await records(web, shop.inventory_url, order_id) if r["kind"] == "compensation"]
    cancelled = [r for r in await records(web, shop.order_url, order_id) if r["kind"] == "compensation"]
    assert [(r["name"], r["source"]) for r in released] == [("release_stock", "kafka")]
    assert [(r["name"], r["detail"]["trigger"]) for r in cancelled] == [("cancel_order", "InventoryReleased")]
    assert released[0]["idempotency_key"].startswith("PaymentFailed/")


@pytest.mark.parametrize(
    ("inventory_compensates", "order_compensates", "tail"),
    [
        (False, False, []),
        (False, True, ["OrderCancelled"]),
        (True, False, ["InventoryReleased"]),
    ],
)
async def test_compensation_switched_off_leaves_events_missing(
    kafka: KafkaBroker,
    shop: RunningShop,
    web: httpx.AsyncClient,
    inventory_compensates: bool,
    order_compensates: bool,
    tail: list[str],
):
    await set_faults(web, shop.payment_url, fail_payments=True)
    await set_faults(web, shop.inventory_url, compensation=inventory_compensates)
    await set_faults(web, shop.order_url, compensation=order_compensates)
    order_id = new_order_id()
    await post_json(web, f"{shop.order_url}/orders", {"order_id": order_id, "sku": SKU, "quantity": 1})

    # Long enough for the order service to give up waiting for InventoryReleased and cancel anyway.
    events = await shop_events(
        kafka.bootstrap, shop.topics, order_id, until={"PaymentFailed"}, settle_s=RELEASE_WAIT_S + 0.7
    )

    assert types(events) == ["OrderCreated", "InventoryReserved", "PaymentFailed", *tail]
    status = (await web.get(f"{shop.order_url}/orders/{order_id}")).json()["status"]
    assert status == ("CANCELLED" if order_compensates else "PENDING")
    assert await available(web, shop) == START_STOCK - (0 if inventory_compensates else 1)


async def test_http_steps_honour_idempotency_keys_and_faults(shop: RunningShop, web: httpx.AsyncClient):
    order_id = new_order_id()
    order = {"order_id": order_id, "sku": SKU, "quantity": 4, "choreography": False}
    steps = [
        (f"{shop.order_url}/orders", order, f"{shop.order_url}/orders/{order_id}/cancel", "post"),
        (
            f"{shop.inventory_url}/reservations",
            {"order_id": order_id, "sku": SKU, "quantity": 4},
            f"{shop.inventory_url}/reservations/{order_id}",
            "delete",
        ),
        (
            f"{shop.payment_url}/payments",
            {"order_id": order_id, "amount": 40.0},
            f"{shop.payment_url}/payments/{order_id}/refund",
            "post",
        ),
    ]
    bases = [shop.order_url, shop.inventory_url, shop.payment_url]

    for base in bases:
        await set_faults(web, base, fail_actions=True)
    for action_url, body, _, _ in steps:
        assert (await post_json(web, action_url, body)).status_code == 500
    for base in bases:
        await set_faults(web, base, fail_actions=False)
    for action_url, body, _, _ in steps:
        done = await post_json(web, action_url, body, **{"Idempotency-Key": f"{order_id}-do"})
        assert done.status_code == 201, done.text
    assert await available(web, shop) == START_STOCK - 4

    for base in bases:
        await set_faults(web, base, fail_compensations=True)
    for _, _, undo_url, method in steps:
        assert (await web.request(method, undo_url, headers={"Idempotency-Key": "undo-1"})).status_code == 500
    for base in bases:
        await set_faults(web, base, fail_compensations=False)
    for _, _, undo_url, method in steps:
        first = await web.request(method, undo_url, headers={"Idempotency-Key": "undo-1"})
        second = await web.request(method, undo_url, headers={"Idempotency-Key": "undo-1"})
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        assert second.headers["Idempotent-Replayed"] == "true"
    assert (await web.get(f"{shop.order_url}/orders/{order_id}")).json()["status"] == "CANCELLED"
    assert (await web.get(f"{shop.payment_url}/payments/{order_id}")).json()["status"] == "REFUNDED"
    assert await available(web, shop) == START_STOCK

    for base in bases:
        compensations = [r for r in await records(web, base, order_id) if r["kind"] == "compensation"]
        actions = [r for r in await records(web, base, order_id) if r["kind"] == "action"]
        assert [(r["idempotency_key"], r["changed"], r["source"]) for r in compensations] == [
            ("undo-1", True, "http")
        ]
        assert [r["idempotency_key"] for r in actions] == [f"{order_id}-do"]

    # A new key on a step already compensated is recorded, as a compensation that changed nothing.
    for _, _, undo_url, method in steps:
        assert (await web.request(method, undo_url, headers={"Idempotency-Key": "undo-2"})).status_code == 200
    for base in bases:
        compensations = [r for r in await records(web, base, order_id) if r["kind"] == "compensation"]
        assert [(r["idempotency_key"], r["changed"]) for r in compensations] == [
            ("undo-1", True),
            ("undo-2", False),
        ]


async def test_switched_off_compensation_answers_without_acting(shop: RunningShop, web: httpx.AsyncClient):
    order_id = new_order_id()
    body = {"order_id": order_id, "sku": SKU, "quantity": 1, "choreography": False}
    assert (await post_json(web, f"{shop.order_url}/orders", body)).status_code == 201
    await set_faults(web, shop.order_url, compensation=False)

    skipped = await web.post(f"{shop.order_url}/orders/{order_id}/cancel", headers={"Idempotency-Key": "u"})

    assert skipped.status_code == 200 and skipped.headers["X-Compensation-Skipped"] == "true"
    assert skipped.json()["status"] == "PENDING"
    assert [r["kind"] for r in await records(web, shop.order_url, order_id)] == ["action"]


async def test_admin_faults_and_reset(shop: RunningShop, web: httpx.AsyncClient):
    assert (await web.get(f"{shop.payment_url}/admin/faults")).json() == {
        "compensation": True,
        "fail_compensations": False,
        "fail_actions": False,
        "fail_payments": False,
    }
    assert (await web.post(f"{shop.order_url}/admin/faults", json={"fail_payments": True})).status_code == 422
    assert (await web.post(f"{shop.order_url}/admin/faults", json={"compensation": "no"})).status_code == 422
    await set_faults(web, shop.inventory_url, fail_actions=True, compensation=False)
    reservation = {"order_id": new_order_id(), "sku": SKU, "quantity": 1}
    assert (await post_json(web, f"{shop.inventory_url}/reservations", reservation)).status_code == 500

    assert (await web.post(f"{shop.inventory_url}/admin/reset")).status_code == 200

    assert (await web.get(f"{shop.inventory_url}/admin/faults")).json()["fail_actions"] is False
    assert (await post_json(web, f"{shop.inventory_url}/reservations", reservation)).status_code == 201
    assert len((await web.get(f"{shop.inventory_url}/admin/records")).json()["records"]) == 1
    assert (await web.post(f"{shop.inventory_url}/admin/reset")).status_code == 200
    assert (await web.get(f"{shop.inventory_url}/admin/records")).json()["records"] == []
    assert await available(web, shop) == START_STOCK


async def test_entry_point_reports_ready_and_stops_on_sigterm(kafka: KafkaBroker, web: httpx.AsyncClient):
    ports = [free_port() for _ in range(3)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.shop",
        "--bootstrap",
        kafka.bootstrap,
        "--order-port",
        str(ports[0]),
        "--inventory-port",
        str(ports[1]),
        "--payment-port",
        str(ports[2]),
        "--topic-prefix",
        f"shop-{uuid.uuid4().hex[:8]}",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            while READY_PREFIX not in (line := (await proc.stdout.readline()).decode()):
                assert line, "the shop exited before it was ready"
        assert f"order http://127.0.0.1:{ports[0]}" in line
        for port in ports:
            (await web.get(f"http://127.0.0.1:{port}/health")).raise_for_status()

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rest = (await proc.stdout.read()).decode()
            assert await proc.wait() == 0
        assert "shop stopped" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
