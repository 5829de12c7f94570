"""Sagas through the API, on real Temporal, PostgreSQL and Kafka, against a local shop."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.events import RunEvent
from crucible.core.kafka import ensure_topic
from crucible.core.store import RunStore
from tests.support.qa import assert_contiguous, events_of, serving, wait_closed
from tests.support.saga_target import SagaTarget
from tests.support.sagas import (
    FAST_RETRY,
    TOKEN,
    http,
    shop_steps,
    start_saga,
    state_data,
    states,
    wait_for_event,
    wait_for_state,
)

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(60)]

FORWARD = [
    "SagaInitiated",
    *[f"Step{n}_{s}" for n in (1, 2) for s in ("Pending", "InProgress", "Completed")],
]
#: Step 2 was stopped in flight: it neither completed nor failed.
INTERRUPTED = FORWARD[:-1]


async def start(api: httpx.AsyncClient, steps: list[dict[str, Any]], name: str = "order") -> str:
    response = await api.post("/api/v1/sagas", json={"name": name, "steps": steps})
    assert response.status_code == 202, response.text
    body = response.json()
    run_id: str = body["run_id"]
    assert run_id.startswith("saga-") and body["links"]["resolve"] == f"/api/v1/runs/{run_id}/signals/resolve"
    return run_id


def compensation_keys(target: SagaTarget) -> list[str | None]:
    return [key for key in target.recorded_keys() if key and key.endswith("-compensation")]


def retrying_second_step(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step 2 retried for minutes: ten attempts, a minute apart."""
    steps[1]["retry"] = {"max_attempts": 10, "initial_interval_s": 60, "backoff": 1, "max_interval_s": 60}
    return steps


async def first_attempt_of_step_2(store: RunStore, target: SagaTarget, run_id: str) -> None:
    await wait_for_state(store, run_id, "Step2_InProgress")
    async with asyncio.timeout(10):
        while not target.arrivals()[f"{run_id}-step2-action"]:
            await asyncio.sleep(0.02)


async def abort_step_2(
    api: httpx.AsyncClient,
    store: RunStore,
    target: SagaTarget,
    run_id: str,
    reason: str,
    *,
    compensated: tuple[int, ...] = (1,),
) -> tuple[dict[str, Any], list[RunEvent]]:
    """Abort once step 2 reached the shop; the run, closed in time, and its events."""
    await first_attempt_of_step_2(store, target, run_id)
    response = await api.post(f"/api/v1/runs/{run_id}/signals/abort", json={"reason": reason})
    assert response.status_code == 202, response.text
    run = await wait_closed(api, run_id, timeout=10)
    assert (run["status"], run["state"]) == ("COMPLETED", "SagaCancelled"), run
    events = await events_of(store, run_id)
    assert states(events) == [*INTERRUPTED, "Compensating", "CompensationCompleted", "SagaCancelled"]
    assert compensation_keys(target) == [f"{run_id}-step{n}-compensation" for n in compensated]
    return run, events


async def test_a_third_step_that_fails_compensates_the_second_then_the_first(
    api: httpx.AsyncClient, store: RunStore, client: Client
) -> None:
    # A 500: the payment may or may not have gone through. The saga says so and leaves it.
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
        (e.type, e.data["step"], e.data.get("uncertain", False))
        for e in events
        if e.type in ("COMPENSATION_STARTED", "STEP_COMPENSATED")
    ] == [
        ("COMPENSATION_STARTED", 2, False),
        ("STEP_COMPENSATED", 2, False),
        ("COMPENSATION_STARTED", 1, False),
        ("STEP_COMPENSATED", 1, False),
    ]
    failed = state_data(events, "Step3_Failed")
    assert (failed["attempt"], failed["status"], failed["error"]) == (2, 500, "SagaCallFailed")
    assert failed["outcome_uncertain"] is True
    assert state_data(events, "Compensating") == {
        "from": "Step3_Failed",
        "to": "Compensating",
        "reason": "step 3 failed",
        "steps": [2, 1],
        "uncertain_step": 3,
    }
    assert events[-1].data["state"] == "SagaCancelled"

    # The shop's own records: exactly one compensation per completed step, last first.
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
    assert [(r.path, r.body) for r in target.records if r.path.startswith("/stock/sku-1")] == [
        ("/stock/sku-1", {"change": "-2", "order": order_id}),
        ("/stock/sku-1/release", {"order": order_id}),
    ]
    assert [r.body for r in target.records if r.path == "/refunds"] == []

    # Events name what was captured; the values stay in the workflow.
    assert state_data(events, "Step1_Completed") == {
        "from": "Step1_InProgress",
        "to": "Step1_Completed",
        "step": 1,
        "name": "create order",
        "status": 201,
        "attempt": 1,
        "captured": ["order_id", "qty", "sku"],
    }
    completed = [e.data for e in events if e.data.get("to", "").endswith("_Completed")]
    assert order_id not in json.dumps(completed)

    summary = run["summary"]
    assert (summary["completed_steps"], summary["failed_step"], summary["uncertain_step"]) == ([1, 2], 3, 3)
    assert [(c["step"], c["outcome"]) for c in summary["compensations"]] == [
        (3, "not compensated (outcome uncertain)"),
        (2, "compensated"),
        (1, "compensated"),
    ]
    assert [(v["step"], v["passed"]) for v in summary["verifications"]] == [(2, True), (1, True)]
    assert summary["restored"] is True
    assert summary["fully_compensated"] is False and summary["not_compensated"] == [3], "it says so"

    history = (await client.get_workflow_handle(run_id).fetch_history()).to_json()
    assert TOKEN not in history and TOKEN not in json.dumps([e.data for e in events])


async def test_a_step_may_ask_to_be_compensated_when_its_outcome_is_uncertain(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    target = SagaTarget(failing={"/payments": 500})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)
        steps[2]["compensate_if_uncertain"] = True
        run_id = await start(api, steps)
        run = await wait_closed(api, run_id, timeout=30)
    assert compensation_keys(target) == [f"{run_id}-step{n}-compensation" for n in (3, 2, 1)]
    first = run["summary"]["compensations"][0]
    assert (first["step"], first["outcome"]) == (3, "compensated (outcome uncertain)")
    assert run["summary"]["fully_compensated"] is True


async def test_abort_during_step_2_interrupts_its_retries_and_compensates_it_then_step_1(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    # Step 2 answers 503 and would retry for minutes; the abort does not wait for that.
    target = SagaTarget(failing={"POST /stock/sku-1": 503})
    async with serving(target.app) as shop:
        steps = retrying_second_step(shop_steps(shop.url))
        steps[1]["compensate_if_uncertain"] = True
        # Step 1's verify looks for a state the shop never reaches: the result says so.
        steps[0]["verify"]["expect"]["json"] = {"$.status": "ARCHIVED"}
        run_id = await start(api, steps)
        run, events = await abort_step_2(api, store, target, run_id, "customer called", compensated=(2, 1))
    stop = next(e.data for e in events if e.type == "STOP_REQUESTED")
    assert stop == {
        "by": "abort",
        "reason": "customer called",
        "interrupted_step": 2,
        "outcome_uncertain": True,
    }
    compensating = state_data(events, "Compensating")
    assert (compensating["steps"], compensating["uncertain_step"]) == ([2, 1], 2)
    assert events[-1].type == "COMPLETE" and events[-1].data["state"] == "SagaCancelled"
    assert target.arrivals()[f"{run_id}-step2-action"] == 1, "no retry of step 2 after the abort"
    assert not [r for r in target.requests if r.path == "/payments"], "no step after the abort ran"
    assert target.stock["sku-1"] == 10, "releasing stock that was never taken changed nothing"

    summary = run["summary"]
    assert (summary["stopped_by"], summary["reason"]) == ("abort", "customer called")
    assert (summary["completed_steps"], summary["failed_step"], summary["uncertain_step"]) == ([1], None, 2)
    assert [(c["step"], c["outcome"]) for c in summary["compensations"]] == [
        (2, "compensated (outcome uncertain)"),
        (1, "compensated"),
    ]
    verified = {v["step"]: v for v in summary["verifications"]}
    assert verified[2]["passed"] is True and verified[1]["passed"] is False
    assert '$.status is "CANCELLED", expected "ARCHIVED"' in verified[1]["reason"]
    assert summary["restored"] is False and summary["fully_compensated"] is True


async def test_abort_during_step_2_compensates_step_1_and_says_step_2_is_uncertain(
    api: httpx.AsyncClient, store: RunStore, client: Client, settings: Settings
) -> None:
    # Step 2's target takes 30 s to answer; its heartbeats carry the abort to it at once.
    target = SagaTarget(slow={"POST /stock/sku-1": 30})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)
        steps[1]["timeout_s"] = 60
        run_id = (await start_saga(client, store, settings, steps, heartbeat_timeout_s=1)).id
        run, events = await abort_step_2(api, store, target, run_id, "too slow")
    stop = next(e.data for e in events if e.type == "STOP_REQUESTED")
    assert (stop["interrupted_step"], run["summary"]["uncertain_step"]) == (2, 2)
    assert [(c["step"], c["outcome"]) for c in run["summary"]["compensations"]] == [
        (2, "not compensated (outcome uncertain)"),
        (1, "compensated"),
    ]


async def test_a_failing_compensation_waits_in_manual_intervention_for_resolve(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    # The payment is refused; releasing the stock fails until it is fixed; cancelling the order never works.
    target = SagaTarget(failing={"/payments": 400, "/stock/sku-1/release": 503, "/orders/o-1": 500})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)[:3]
        steps[1]["verify"] = None
        run_id = await start(api, steps)
        early = {"action": "retry", "note": "before anything failed"}
        assert (await api.post(f"/api/v1/runs/{run_id}/signals/resolve", json=early)).status_code == 202
        await wait_for_state(store, run_id, "ManualIntervention")
        run = (await api.get(f"/api/v1/runs/{run_id}")).json()
        assert (run["status"], run["state"]) == ("RUNNING", "ManualIntervention")
        assert run["progress"]["awaiting_resolution"] == {"step": 2, "signal": "resolve"}

        bad = await api.post(f"/api/v1/runs/{run_id}/signals/resolve", json={"action": "ignore"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "action"]

        # An abort cannot stop a compensation: it is recorded, and the saga keeps waiting.
        abort = await api.post(f"/api/v1/runs/{run_id}/signals/abort", json={"reason": "give up"})
        assert abort.status_code == 202
        await wait_for_event(store, run_id, "SIGNAL_IGNORED", times=2)
        run = (await api.get(f"/api/v1/runs/{run_id}")).json()
        assert (run["state"], run["progress"]["awaiting_resolution"]) == (
            "ManualIntervention",
            {"step": 2, "signal": "resolve"},
        )

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
    assert [e.data for e in events if e.type == "SIGNAL_IGNORED"] == [
        {
            "signal": "resolve",
            "why": "no compensation waits for one",
            "note": "before anything failed",
            "action": "retry",
        },
        {
            "signal": "abort",
            "why": "compensation has begun; step 2 waits in ManualIntervention for resolve",
            "note": "give up",
        },
    ]
    assert compensation_keys(target) == [f"{run_id}-step2-compensation"], "step 1's compensation never took"
    summary = run["summary"]
    assert [(c["step"], c["outcome"], c["rounds"]) for c in summary["compensations"]] == [
        (2, "compensated", 2),
        (1, "marked resolved", 1),
    ]
    assert summary["fully_compensated"] is False and summary["marked_resolved"] == [1]
    assert (summary["stopped_by"], summary["uncertain_step"]) == (None, None), "a 400 took no effect"


async def test_cancelling_interrupts_the_step_in_flight_compensates_and_ends_cancelled(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    target = SagaTarget(failing={"POST /stock/sku-1": 503})
    async with serving(target.app) as shop:
        steps = retrying_second_step(shop_steps(shop.url))
        steps[1]["compensate_if_uncertain"] = True
        run_id = await start(api, steps)
        await first_attempt_of_step_2(store, target, run_id)
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        run = await wait_closed(api, run_id, timeout=15)
    assert (run["status"], run["state"]) == ("CANCELLED", "SagaCancelled"), run
    events = await events_of(store, run_id)
    assert_contiguous(events)
    assert states(events) == [*INTERRUPTED, "Compensating", "CompensationCompleted", "SagaCancelled"]
    stop = next(e.data for e in events if e.type == "STOP_REQUESTED")
    assert (stop["by"], stop["interrupted_step"]) == ("cancel", 2)
    assert events[-1].type == "CANCELLED" and events[-1].data["fully_compensated"] is True
    assert compensation_keys(target) == [f"{run_id}-step2-compensation", f"{run_id}-step1-compensation"]
    assert run["summary"]["restored"] is True


@pytest.mark.parametrize("stop", ["cancel", "abort"])
async def test_a_stop_during_compensation_lets_it_finish(
    api: httpx.AsyncClient, store: RunStore, stop: str
) -> None:
    target = SagaTarget(failing={"/payments": 400}, slow={"DELETE /orders/o-1": 1})
    async with serving(target.app) as shop:
        run_id = await start(api, shop_steps(shop.url)[:3])
        await wait_for_event(store, run_id, "STEP_COMPENSATED")  # step 2's; step 1's is slow
        if stop == "cancel":
            response = await api.post(f"/api/v1/runs/{run_id}/cancel")
        else:
            response = await api.post(f"/api/v1/runs/{run_id}/signals/abort", json={"reason": "stop it"})
        assert response.status_code == 202
        run = await wait_closed(api, run_id, timeout=15)
    events = await events_of(store, run_id)
    assert states(events)[-3:] == ["Compensating", "CompensationCompleted", "SagaCancelled"]
    assert compensation_keys(target) == [f"{run_id}-step2-compensation", f"{run_id}-step1-compensation"]
    assert target.orders == {"o-1": "CANCELLED"} and target.stock == {"sku-1": 10}
    last, ignored = events[-1], [e.data for e in events if e.type == "SIGNAL_IGNORED"]
    assert last.data["fully_compensated"] is True and last.data["restored"] is True
    assert last.data["stopped_by"] is None, "the saga was failing already"
    if stop == "cancel":  # the run ends as cancelled, once compensation is done
        assert (run["status"], run["state"], last.type) == ("CANCELLED", "SagaCancelled", "CANCELLED"), run
        assert not ignored
    else:
        assert (run["status"], run["state"], last.type) == ("COMPLETED", "SagaCancelled", "COMPLETE"), run
        assert ignored == [{"signal": "abort", "why": "compensation has begun", "note": "stop it"}]


async def test_cancelling_in_manual_intervention_says_what_was_left_undone(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    target = SagaTarget(failing={"/payments": 500, "/refunds": 500})
    async with serving(target.app) as shop:
        steps = shop_steps(shop.url)
        steps[2]["action"] = http("POST", f"{shop.url}/charges", {"order": "{{order_id}}"})
        steps[3]["action"] = http("POST", f"{shop.url}/payments", {})
        # Step 4 fails with a 500, so it may have shipped: it asks to be compensated then, and is;
        # step 3's refund fails.
        steps[3]["compensate_if_uncertain"] = True
        run_id = await start(api, steps)
        await wait_for_state(store, run_id, "ManualIntervention")
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        run = await wait_closed(api, run_id, timeout=30)
    assert (run["status"], run["state"]) == ("CANCELLED", "ManualIntervention"), run
    last = (await events_of(store, run_id))[-1]
    assert last.type == "CANCELLED" and last.data["not_compensated"] == [3, 2, 1]
    compensations = [(c["step"], c["outcome"]) for c in last.data["compensations"]]
    assert compensations[0] == (4, "compensated (outcome uncertain)")
    assert last.data["fully_compensated"] is False
    assert compensation_keys(target) == [f"{run_id}-step4-compensation"], "nothing after the cancellation"


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
