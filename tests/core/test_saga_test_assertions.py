"""A saga test's assertions and how it reads a message, without Kafka or Temporal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crucible.core.saga_tests.assertions import (
    check_duplicates,
    check_order,
    check_trigger,
    compensation_events,
    evaluate,
    failure_event,
    verdict_of,
)
from crucible.core.saga_tests.models import EventSummary, RequestSpec, SagaTestSpec, TriggerResult
from crucible.core.saga_tests.records import EventReader, NotJson, Untyped, ordered, summarize

SAGA = ["OrderCreated", "InventoryReserved", "PaymentFailed", "InventoryReleased", "OrderCancelled"]


def spec(**fields: Any) -> SagaTestSpec:
    expected = fields.pop("expected", SAGA)
    return SagaTestSpec(["t"], RequestSpec("POST", "http://shop/orders"), expected, **fields)


def events(*types: str, gap_s: float = 1.0, digest: str = "") -> list[EventSummary]:
    return [
        EventSummary(t, "t", 0, i, f"at {i}", time_s=i * gap_s, digest=digest or f"d{i}")
        for i, t in enumerate(types)
    ]


def test_the_failure_and_compensation_events_follow_from_the_expected_ones() -> None:
    assert failure_event(spec()) == "PaymentFailed"
    assert compensation_events(spec()) == ["InventoryReleased", "OrderCancelled"]
    assert compensation_events(spec(expected=["OrderCreated", "OrderConfirmed"])) == []
    chosen = spec(failure_event="InventoryReserved", compensation_events=["OrderCancelled"])
    assert (failure_event(chosen), compensation_events(chosen)) == ("InventoryReserved", ["OrderCancelled"])


def test_a_complete_saga_passes_every_assertion() -> None:
    results = evaluate(spec(), events(*SAGA))
    assert [r.name for r in results] == [
        "expected_events_in_order",
        "no_duplicates",
        "compensation_complete",
        "recovery_within",
    ]
    assert verdict_of(results) == "PASSED"
    assert results[-1].details["recovery_s"] == 2.0


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        (SAGA[:3], "InventoryReleased was not observed (expected after PaymentFailed)"),
        (SAGA[1:], "OrderCreated was not observed (expected first)"),
        ([*SAGA[:3], "OrderCancelled", "InventoryReleased"], "OrderCancelled came before InventoryReleased"),
        ([*SAGA[:2], "PaymentSucceeded", *SAGA[2:]], "unexpected PaymentSucceeded after InventoryReserved"),
    ],
)
def test_the_order_assertion_names_the_first_problem(observed: list[str], reason: str) -> None:
    result = check_order(SAGA, events(*observed))
    assert not result.passed and result.reason.startswith(reason)


def test_other_events_may_be_allowed() -> None:
    observed = events("Audit", *SAGA)
    assert check_order(SAGA, observed, allow_other=True).passed


def test_a_repeat_is_a_duplicate_and_a_message_published_twice_says_so() -> None:
    result = check_duplicates(events(*SAGA[:3], "PaymentFailed"))
    assert not result.passed and result.reason == "PaymentFailed seen 2 times"
    again = check_duplicates(events("OrderCreated", "OrderCreated", digest="same"))
    assert again.reason == "OrderCreated seen 2 times (the same message published again)"


def test_slow_recovery_and_missing_compensation_fail() -> None:
    slow = evaluate(spec(recovery_within_s=1.5), events(*SAGA))
    assert [(r.name, r.passed) for r in slow][-1] == ("recovery_within", False)
    assert slow[-1].reason == "recovery took 2 s, more than 1.5 s"
    partial = {r.name: r for r in evaluate(spec(), events(*SAGA[:4]))}
    missing = "compensation incomplete: OrderCancelled was not observed"
    assert partial["compensation_complete"].reason == missing
    assert not partial["recovery_within"].passed


def test_the_trigger_must_be_accepted_and_give_an_id() -> None:
    assert check_trigger(TriggerResult(201, 3.0, "ABC")).passed
    assert check_trigger(TriggerResult(500, 3.0, "ABC")).reason == "the trigger answered 500"
    assert "no correlation id" in check_trigger(TriggerResult(201, 3.0, None, "no field")).reason


def message(**value: Any) -> bytes:
    return json.dumps(value).encode()


def read(value: bytes | None, *, timestamp_ms: int = 1_700_000_000_000) -> EventSummary | None:
    reader = EventReader.of("$.order_id", "$.type", "$.at")
    return summarize(
        reader, "ABC", topic="t", partition=1, offset=0, timestamp_ms=timestamp_ms, key=b"ABC", value=value
    )


def test_a_message_is_read_by_its_paths() -> None:
    own = read(message(type="OrderCreated", order_id="ABC", at="2026-01-01T00:00:00.250000+00:00"))
    assert own is not None and own.type == "OrderCreated" and own.key == "ABC"
    assert own.timestamp == "2026-01-01T00:00:00.250000Z" and len(own.digest) == 12
    kafka_time = read(message(type="OrderCreated", order_id="ABC"))
    assert kafka_time is not None and kafka_time.time_s == 1_700_000_000.0
    assert read(message(type="OrderCreated", order_id="OTHER")) is None
    numeric = summarize(
        EventReader.of("$.id", "$.type", None), "42", topic="t", partition=0, offset=0, timestamp_ms=0,
        key=None, value=message(type="X", id=42),
    )  # fmt: skip
    assert numeric is not None and numeric.type == "X"
    with pytest.raises(NotJson):
        read(b"not json")
    with pytest.raises(Untyped):
        read(message(order_id="ABC"))


def test_events_are_ordered_by_time_then_topic_and_offset() -> None:
    first, second = events("A", "B", gap_s=0.0)
    assert [e.type for e in ordered([second, first], ["t"])] == ["A", "B"]
