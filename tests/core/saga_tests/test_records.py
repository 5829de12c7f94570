"""How a saga test reads one Kafka message, and how it orders the events it collected."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crucible.core.saga_tests.models import EventSummary
from crucible.core.saga_tests.records import EventReader, NotJson, Untyped, ordered, summarize


def message(**value: Any) -> bytes:
    return json.dumps(value).encode()


def read(value: bytes | None, *, timestamp_ms: int = 1_700_000_000_000) -> EventSummary | None:
    reader = EventReader.of("$.order_id", "$.type", "$.at", "$.event_id")
    return summarize(
        reader, "ABC", topic="t", partition=1, offset=0, timestamp_ms=timestamp_ms, key=b"ABC", value=value
    )


def test_a_message_is_read_by_its_paths() -> None:
    own = read(
        message(type="OrderCreated", order_id="ABC", at="2026-01-01T00:00:00.250000+00:00", event_id=7)
    )
    assert own is not None and own.type == "OrderCreated" and own.key == "ABC"
    assert own.timestamp == "2026-01-01T00:00:00.250000Z" and len(own.digest) == 12
    assert own.event_id == "7" and own.identity == "id 7"
    kafka_time = read(message(type="OrderCreated", order_id="ABC"))
    assert kafka_time is not None and kafka_time.time_s == 1_700_000_000.0
    assert kafka_time.event_id is None and kafka_time.identity == f"digest {kafka_time.digest}"
    no_time = read(message(type="OrderCreated", order_id="ABC"), timestamp_ms=-1)
    assert no_time is not None and (no_time.timestamp, no_time.time_s) == (None, None)
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


def event(kind: str, partition: int, offset: int, time_s: float | None, topic: str = "t") -> EventSummary:
    return EventSummary(kind, topic, partition, offset, None, time_s)


def kinds(events: list[EventSummary]) -> list[str]:
    return [e.type for e in events]


def test_a_partition_keeps_its_offset_order_whatever_the_clocks_say() -> None:
    # B was published after A on partition 0, with an earlier clock; C is on partition 1.
    a, b, c = event("A", 0, 1, 20.0), event("B", 0, 2, 10.0), event("C", 1, 7, 15.0)
    assert kinds(ordered([b, c, a], ["t"])) == ["C", "A", "B"]


def test_partitions_are_merged_by_time_then_topic_partition_and_offset() -> None:
    same = [event("Y", 1, 0, 5.0), event("X", 0, 3, 5.0), event("W", 0, 0, 5.0, topic="u")]
    assert kinds(ordered(same, ["u", "t"])) == ["W", "X", "Y"]
    assert kinds(ordered([event("B", 0, 2, 2.0), event("A", 1, 0, 1.0)], ["t"])) == ["A", "B"]


def test_an_event_without_a_time_stays_behind_its_partition_predecessor() -> None:
    untimed = [event("A", 0, 0, 10.0), event("B", 0, 1, None), event("C", 1, 0, 11.0)]
    assert kinds(ordered(untimed, ["t"])) == ["A", "B", "C"]
    first_untimed = [event("B", 0, 0, None), event("D", 0, 1, 30.0), event("C", 1, 0, 20.0)]
    assert kinds(ordered(first_untimed, ["t"])) == ["C", "B", "D"]
