"""Sagas through the API, on real Temporal, PostgreSQL and Kafka, against a local shop."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.kafka import ensure_topic
from crucible.core.store import RunStore
from tests.support.qa import assert_contiguous, events_of, serving, wait_closed
from tests.support.saga_target import SagaTarget
from tests.support.sagas import FAST_RETRY, TOKEN, http, shop_steps, states, wait_for_state

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

FORWARD = [
    "SagaInitiated",
    *[f"Step{n}_{s}" for n in (1, 2) for s in ("Pending", "InProgress", "Completed")],
]


async def start(api: httpx.AsyncClient, steps: list[dict[str, Any]], name: str = "order") -> str:
    response = await api.post("/api/v1/sagas", json={"name": name, "steps": steps})
    assert response.status_code == 202, response.text
    body = response.json()
    run_id: str = body["run_id"]
    assert run_id.startswith("saga-") and body["links"]["resolve"] == f"/api/v1/runs/{run_id}/signals/resolve"
    return run_id


def compensation_keys(target: SagaTarget) -> list[str | None]:
    return [key for key in target.recorded_keys() if key and key.endswith("-compensation")]


async def test_a_failing_third_step_compensates_the_second_then_the_first(
    api: httpx.AsyncClient, store: RunStore, client: Client
) -> None:
    target = SagaTarget(failing={"/payments": 500})
    async with serving(target.app) as shop:
        run_id = await start(api, shop_steps(shop.url))
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"], run["verdict"]) == ("COMPLETED", "SagaCancelled", None), run

    events = await events_of(store, run_id)
    assert_contiguous(events)
    assert states(events) == [
        *FORWARD,
        "Step3_Pending",
        "Step3_InProgress",
        "Step3_Failed",
        "Compensating",
        "CompensationCompleted",
        "SagaCancelled",
    ]
    types = [e.type for e in events]
    assert types[0] == "REQUESTED" and types[-1] == "COMPLETE"
    assert [
        (e.type, e.data["step"]) for e in events if e.type in ("COMPENSATION_STARTED", "STEP_COMPENSATED")
    ] == [
        ("COMPENSATION_STARTED", 2),
        ("STEP_COMPENSATED", 2),
        ("COMPENSATION_STARTED", 1),
        ("STEP_COMPENSATED", 1),
    ]
    failed = next(e.data for e in events if e.type == "STATE_CHANGED" and e.data["to"] == "Step3_Failed")
    assert (failed["attempt"], failed["status"], failed["error"]) == (2, 500, "SagaCallFailed")
    assert events[-1].data["state"] == "SagaCancelled"

    # The shop's own records: one compensation per completed step, in reverse order.
    assert compensation_keys(target) == [f"{run_id}-step2-compensation", f"{run_id}-step1-compensation"]
    order_id = next(iter(target.orders))
    assert target.orders[order_id] == "CANCELLED" and target.stock["sku-1"] == 10

    # Captures from step 1 reached step 3's URL, body (typed) and headers, and the compensations.
    payments = [r for r in target.requests if r.path == "/payments"]
    assert len(payments) == 2 and {r.key for r in payments} == {f"{run_id}-step3-action"}
    assert payments[0].body == {"order": order_id, "qty": 2}
    assert payments[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert payments[0].headers["x-order"] == order_id
    assert [r.path for r in target.records if r.method == "DELETE"] == [f"/orders/{order_id}"]
    assert [r.body for r in target.records if r.path == "/stock/sku-1"] == [
        {"change": "-2", "order": order_id},
        {"change": 2},
    ]

    summary = run["summary"]
    assert (summary["completed_steps"], summary["failed_step"]) == ([1, 2], 3)
    assert [(c["step"], c["outcome"]) for c in summary["compensations"]] == [
        (2, "compensated"),
        (1, "compensated"),
    ]
    assert [(v["step"], v["passed"]) for v in summary["verifications"]] == [(2, True), (1, True)]
    assert summary["restored"] is True and summary["fully_compensated"] is True

    history = (await client.get_workflow_handle(run_id).fetch_history()).to_json()
    assert TOKEN not in history and TOKEN not in json.dumps([e.data for e in events])


async def test_abort_during_step_2_compensates_what_completed(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    target = SagaTarget(slow={"POST /stock/sku-1": 1.5})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)
        # Step 1's verify looks for a state the shop never reaches: the result says so.
        steps[0]["verify"]["expect"]["json"] = {"$.status": "ARCHIVED"}
        run_id = await start(api, steps)
        await wait_for_state(store, run_id, "Step2_InProgress")
        response = await api.post(f"/api/v1/runs/{run_id}/signals/abort", json={"reason": "customer called"})
        assert response.status_code == 202, response.text
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"]) == ("COMPLETED", "SagaCancelled"), run

    events = await events_of(store, run_id)
    assert states(events) == [*FORWARD, "Compensating", "CompensationCompleted", "SagaCancelled"]
    stop = next(e.data for e in events if e.type == "STOP_REQUESTED")
    assert stop == {"by": "abort", "reason": "customer called"}
    assert events[-1].type == "COMPLETE" and events[-1].data["state"] == "SagaCancelled"
    assert compensation_keys(target) == [f"{run_id}-step2-compensation", f"{run_id}-step1-compensation"]
    assert not [r for r in target.requests if r.path == "/payments"], "no step after the abort ran"

    summary = run["summary"]
    assert (summary["stopped_by"], summary["reason"]) == ("abort", "customer called")
    verified = {v["step"]: v for v in summary["verifications"]}
    assert verified[2]["passed"] is True and verified[1]["passed"] is False
    assert '$.status is "CANCELLED", expected "ARCHIVED"' in verified[1]["reason"]
    assert summary["restored"] is False


async def test_a_failing_compensation_waits_in_manual_intervention_for_resolve(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    # The payment is refused; releasing the stock fails until it is fixed; cancelling the order never works.
    target = SagaTarget(failing={"/payments": 400, "/stock/sku-1/release": 503, "/orders/o-1": 500})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)[:3]
        steps[1]["compensation"]["http"]["url"] += "/release"
        steps[1]["verify"] = None
        run_id = await start(api, steps)
        await wait_for_state(store, run_id, "ManualIntervention")
        run = (await api.get(f"/api/v1/runs/{run_id}")).json()
        assert (run["status"], run["state"]) == ("RUNNING", "ManualIntervention")
        assert run["progress"]["awaiting_resolution"] == {"step": 2, "signal": "resolve"}

        bad = await api.post(f"/api/v1/runs/{run_id}/signals/resolve", json={"action": "ignore"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "action"]

        target.failing.pop("/stock/sku-1/release")  # fixed: the retry goes through
        resolve = {"action": "retry", "note": "restarted inventory"}
        assert (await api.post(f"/api/v1/runs/{run_id}/signals/resolve", json=resolve)).status_code == 202
        # Step 1's compensation keeps failing: it is put right by hand and marked resolved.
        await wait_for_state(store, run_id, "ManualIntervention", times=2)
        resolve = {"action": "mark_resolved", "note": "cancelled o-1 in the back office"}
        assert (await api.post(f"/api/v1/runs/{run_id}/signals/resolve", json=resolve)).status_code == 202
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"]) == ("COMPLETED", "SagaCancelled"), run

    events = await events_of(store, run_id)
    assert states(events) == [
        *FORWARD,
        "Step3_Pending",
        "Step3_InProgress",
        "Step3_Failed",
        "Compensating",
        "CompensationFailed",
        "ManualIntervention",
        "Compensating",
        "CompensationFailed",
        "ManualIntervention",
        "Compensating",
        "CompensationCompleted",
        "SagaCancelled",
    ]
    failed = next(e.data for e in events if e.type == "STATE_CHANGED" and e.data["to"] == "Step3_Failed")
    assert (failed["attempt"], failed["error"]) == (1, "SagaCallRejected"), "a 400 is not retried"
    resolved = [
        (e.data["step"], e.data["action"], e.data["note"])
        for e in events
        if e.type == "INTERVENTION_RESOLVED"
    ]
    assert resolved == [
        (2, "retry", "restarted inventory"),
        (1, "mark_resolved", "cancelled o-1 in the back office"),
    ]
    assert compensation_keys(target) == [f"{run_id}-step2-compensation"], "step 1's compensation never took"
    summary = run["summary"]
    assert [(c["step"], c["outcome"], c["rounds"]) for c in summary["compensations"]] == [
        (2, "compensated", 2),
        (1, "marked resolved", 1),
    ]
    assert summary["fully_compensated"] is False and summary["marked_resolved"] == [1]


async def test_cancelling_compensates_and_ends_cancelled(api: httpx.AsyncClient, store: RunStore) -> None:
    target = SagaTarget(slow={"POST /stock/sku-1": 1.5})
    async with serving(target.app) as shop:
        run_id = await start(api, shop_steps(shop.url))
        await wait_for_state(store, run_id, "Step2_InProgress")
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"]) == ("CANCELLED", "SagaCancelled"), run
    events = await events_of(store, run_id)
    assert_contiguous(events)
    assert states(events) == [*FORWARD, "Compensating", "CompensationCompleted", "SagaCancelled"]
    assert events[-1].type == "CANCELLED" and events[-1].data["fully_compensated"] is True
    assert compensation_keys(target) == [f"{run_id}-step2-compensation", f"{run_id}-step1-compensation"]
    assert run["summary"]["restored"] is True


async def test_cancelling_in_manual_intervention_says_what_was_left_undone(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    target = SagaTarget(failing={"/payments": 500, "/refunds": 500})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)
        steps[2]["action"] = http("POST", f"{shop.url}/charges", {"order": "{{order_id}}"})
        steps[3]["action"] = http("POST", f"{shop.url}/payments", {})
        run_id = await start(api, steps)  # step 4 fails; step 3's refund fails
        await wait_for_state(store, run_id, "ManualIntervention")
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"]) == ("CANCELLED", "ManualIntervention"), run
    last = (await events_of(store, run_id))[-1]
    assert last.type == "CANCELLED" and last.data["not_compensated"] == [3, 2, 1]
    assert not compensation_keys(target), "nothing was compensated after the cancellation"


async def test_a_kafka_action_and_compensation_publish_with_idempotency_keys(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    topic = f"saga-orders-{uuid.uuid4().hex[:8]}"
    bootstrap = settings.effective_kafka_bootstrap_servers
    await ensure_topic(bootstrap, topic, partitions=1)
    target = SagaTarget(failing={"/payments": 500})
    async with serving(target.app) as shop:
        steps = [
            *shop_steps(shop.url)[:1],
            {
                "name": "announce",
                "action": {
                    "kafka": {
                        "topic": topic,
                        "key": "{{order_id}}",
                        "value": {"type": "OrderPlaced", "order": "{{order_id}}", "qty": "{{qty}}"},
                    }
                },
                "compensation": {
                    "kafka": {
                        "topic": topic,
                        "key": "{{order_id}}",
                        "value": {"type": "OrderWithdrawn", "order": "{{order_id}}"},
                    }
                },
                "retry": FAST_RETRY,
            },
            {"name": "pay", "action": http("POST", f"{shop.url}/payments", {}), "retry": FAST_RETRY},
        ]
        run_id = await start(api, steps)
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"]) == ("COMPLETED", "SagaCancelled"), run
    order_id = next(iter(target.orders))

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        messages: list[Any] = []
        while len(messages) < 2:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, f"only {len(messages)} messages on {topic}"
            messages += [m for records in batch.values() for m in records]
    finally:
        await consumer.stop()
    assert [(m.key, json.loads(m.value)) for m in messages] == [
        (order_id.encode(), {"type": "OrderPlaced", "order": order_id, "qty": 2}),
        (order_id.encode(), {"type": "OrderWithdrawn", "order": order_id}),
    ]
    assert [dict(m.headers)["Idempotency-Key"].decode() for m in messages] == [
        f"{run_id}-step2-action",
        f"{run_id}-step2-compensation",
    ]


async def test_an_invalid_saga_is_a_422_naming_every_wrong_field(api: httpx.AsyncClient) -> None:
    url = "http://shop.test"
    body = {
        "name": "broken",
        "steps": [
            {
                "name": "one",
                "action": {**http("POST", "ftp://shop.test/orders"), "capture": {"order_id": "id"}},
                "compensation": {**http("DELETE", f"{url}/x"), "kafka": {"topic": "t", "value": 1}},
            },
            {
                "name": "two",
                "action": {"kafka": {"topic": "bad topic!", "value": {}}, "capture": {"x": "$.x"}},
                "verify": {"kafka": {"topic": "t", "value": 1}},
                "retry": {"max_attempts": 0},
            },
        ],
    }
    response = await api.post("/api/v1/sagas", json=body)
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert {
        ("body", "steps", 0, "action", "http", "url"),
        ("body", "steps", 0, "action", "capture"),
        ("body", "steps", 0, "compensation"),
        ("body", "steps", 1, "action", "kafka", "topic"),
        ("body", "steps", 1, "verify"),
        ("body", "steps", 1, "retry", "max_attempts"),
    } <= locs, locs

    placeholders = {
        "name": "placeholders",
        "steps": [
            {
                "name": "one",
                "action": {**http("POST", f"{url}/orders/{{{{order_id}}}}"), "capture": {"order_id": "$.id"}},
                "compensation": http("DELETE", f"{url}/orders/{{{{order_id}}}}", {"by": "{{record.user}}"}),
            },
            {
                "name": "two",
                "action": {
                    **http("POST", f"{url}/pay", headers={"X-Later": "{{payment_id}}"}),
                    "capture": {"order_id": "$.id"},
                },
                "verify": {
                    **http("GET", f"{url}/orders/{{{{order_id}}}}"),
                    "expect": {"json": {"$.p": "{{payment_id}}"}},
                },
            },
            {"name": "three", "action": {**http("POST", f"{url}/p"), "capture": {"payment_id": "$.id"}}},
        ],
    }
    response = await api.post("/api/v1/sagas", json=placeholders)
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert set(errors) == {
        ("body", "steps", 0, "action", "http", "url"),
        ("body", "steps", 0, "compensation", "http", "body", "by"),
        ("body", "steps", 1, "action", "http", "headers", "X-Later"),
        ("body", "steps", 1, "action", "capture", "order_id"),
        ("body", "steps", 1, "verify", "expect", "json", "$.p"),
    }, errors
    assert "unknown placeholder {{order_id}}" in errors[("body", "steps", 0, "action", "http", "url")]
    assert (
        "{{record.user}} is not a placeholder"
        in errors[("body", "steps", 0, "compensation", "http", "body", "by")]
    )
    assert (
        "step 1 captures 'order_id' already" in errors[("body", "steps", 1, "action", "capture", "order_id")]
    )
