"""A saga test's assertions over the events it collected, without Kafka or Temporal."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from crucible.core.saga_tests.assertions import (
    check_duplicates,
    check_order,
    check_repeated_types,
    check_trigger,
    compensation_events,
    evaluate,
    failure_event,
    verdict_of,
)
from crucible.core.saga_tests.models import EventSummary, RequestSpec, SagaTestSpec, TriggerResult

SAGA = ["OrderCreated", "InventoryReserved", "PaymentFailed", "InventoryReleased", "OrderCancelled"]


def spec(**fields: Any) -> SagaTestSpec:
    expected = fields.pop("expected", SAGA)
    return SagaTestSpec(["t"], RequestSpec("POST", "http://shop/orders"), expected, **fields)


def events(*types: str, gap_s: float = 1.0) -> list[EventSummary]:
    return [
        EventSummary(t, "t", 0, i, f"at {i}", time_s=i * gap_s, digest=f"d{i}", event_id=f"e{i}")
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
        "no_repeated_types",
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


def test_an_event_delivered_twice_is_a_duplicate_by_its_id_or_else_its_value() -> None:
    first, second, third = events(*SAGA[:3])
    again = dataclasses.replace(third, offset=9, digest="other")  # the same event id, sent again
    result = check_duplicates([first, second, third, again])
    assert not result.passed
    assert result.reason == "PaymentFailed delivered 2 times (with the same event id: id e2)"
    assert result.details["duplicates"] == [
        {"identity": "id e2", "type": "PaymentFailed", "at": ["t/0@2", "t/0@9"]}
    ]

    no_ids = [dataclasses.replace(e, event_id=None) for e in (first, second)]
    copy = dataclasses.replace(no_ids[0], offset=5)
    assert check_duplicates([*no_ids, copy]).reason == (
        "OrderCreated delivered 2 times (the same message: digest d0)"
    )
    assert check_duplicates(no_ids).passed, "another value is another event"


def test_a_type_in_two_events_fails_unless_allowed_and_is_no_duplicate() -> None:
    retried = events("OrderCreated", "PaymentFailed", "PaymentFailed", "OrderCancelled")
    assert check_duplicates(retried).passed

    repeated = check_repeated_types(retried)
    assert not repeated.passed
    assert repeated.reason.startswith("PaymentFailed seen in 2 different events")
    assert repeated.details["repeated"] == {"PaymentFailed": ["t/0@1", "t/0@2"]}

    allowed = check_repeated_types(retried, ["PaymentFailed"])
    assert allowed.passed and allowed.reason == "repeated as allowed: PaymentFailed 2 times"
    results = evaluate(
        spec(allow_repeated_types=["PaymentFailed"], expected=["OrderCreated", "PaymentFailed"]), retried[:3]
    )
    assert verdict_of(results) == "PASSED", results


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


def test_an_event_without_a_time_cannot_time_the_recovery() -> None:
    untimed = events(*SAGA)
    untimed[2] = dataclasses.replace(untimed[2], timestamp=None, time_s=None)
    recovery = {r.name: r for r in evaluate(spec(), untimed)}["recovery_within"]
    assert not recovery.passed and recovery.reason.startswith("PaymentFailed has no time")
