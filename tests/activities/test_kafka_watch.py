"""Watching topics for a saga test, against the session's broker: marking, collecting, resuming."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from temporalio.testing import ActivityEnvironment

from crucible.activities.kafka_watch import KafkaWatchActivities, new_partitions
from crucible.core.kafka import ensure_topic
from crucible.core.saga_tests.models import (
    CollectedEvents,
    CollectEventsInput,
    MarkTopicEndsInput,
    TopicOffsets,
)
from tests.support.servers import KafkaBroker

pytestmark = pytest.mark.timeout(30)

ORDER = "ord-1"


class Topic:
    def __init__(self, name: str, producer: AIOKafkaProducer) -> None:
        self.name = name
        self.producer = producer

    async def publish(self, partition: int, value: Any) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(self.name, raw, partition=partition)

    async def event(self, partition: int, kind: str, at: str, *, order_id: str = ORDER) -> None:
        value = {"type": kind, "order_id": order_id, "at": f"2026-01-01T00:00:{at}+00:00", "event_id": kind}
        await self.publish(partition, value)


@pytest.fixture
async def topic(kafka: KafkaBroker) -> AsyncIterator[Topic]:
    name = f"watch-{uuid.uuid4().hex[:8]}"
    await ensure_topic(kafka.bootstrap, name, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        yield Topic(name, producer)
    finally:
        await producer.stop()


@pytest.fixture
def watch(kafka: KafkaBroker) -> KafkaWatchActivities:
    return KafkaWatchActivities(kafka.bootstrap)


def collect(offsets: dict[str, dict[str, int]], *expected: str, within_s: float = 10) -> CollectEventsInput:
    return CollectEventsInput(
        TopicOffsets(offsets), ORDER, list(expected), settle_s=0, deadline=time.time() + within_s
    )


async def test_marking_gives_the_next_offset_of_every_partition(
    watch: KafkaWatchActivities, topic: Topic
) -> None:
    await topic.event(0, "Old", "00")
    await topic.event(0, "Old", "01")
    await topic.event(1, "Old", "02")
    marked: TopicOffsets = await ActivityEnvironment().run(
        watch.mark_topic_ends, MarkTopicEndsInput([topic.name])
    )
    assert marked.offsets == {topic.name: {"0": 2, "1": 1}}


async def test_collecting_reads_after_the_mark_keeps_partition_order_and_finds_added_partitions(
    watch: KafkaWatchActivities, topic: Topic
) -> None:
    await topic.event(0, "BeforeTheMark", "00")
    await topic.event(1, "OnAnAddedPartition", "09")
    marked: TopicOffsets = await ActivityEnvironment().run(
        watch.mark_topic_ends, MarkTopicEndsInput([topic.name])
    )
    # As if partition 1 had been added after the mark: all of it is read.
    offsets = {topic.name: {"0": marked.offsets[topic.name]["0"]}}
    await topic.publish(0, b"not json")
    await topic.event(0, "C", "16", order_id="another order")
    await topic.event(0, "A", "20")
    await topic.event(0, "B", "10")  # published after A, with an earlier clock
    await topic.event(1, "C", "15")

    collected: CollectedEvents = await ActivityEnvironment().run(
        watch.collect_correlated_events, collect(offsets, "A", "B", "C")
    )

    assert [e.type for e in collected.events] == ["OnAnAddedPartition", "C", "A", "B"]
    assert [(e.partition, e.offset, e.event_id) for e in collected.events][:2] == [
        (1, 0, "OnAnAddedPartition"),
        (1, 1, "C"),
    ]
    assert collected.positions == {topic.name: {"0": 5, "1": 2}}
    assert (collected.matched, collected.read, collected.not_json, collected.timed_out) == (4, 6, 1, False)


async def test_a_retried_collection_carries_on_from_its_last_heartbeat(
    watch: KafkaWatchActivities, topic: Topic
) -> None:
    marked: TopicOffsets = await ActivityEnvironment().run(
        watch.mark_topic_ends, MarkTopicEndsInput([topic.name])
    )
    await topic.event(0, "A", "01")
    beats: list[Any] = []
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *details: beats.append(details[0]) if details else None
    # The first attempt reads A and stops before B arrives (its worker died, say).
    await first.run(watch.collect_correlated_events, collect(marked.offsets, "A", "B", within_s=0.5))
    checkpoint = beats[-1]
    assert checkpoint["positions"] == {topic.name: {"0": 1, "1": 0}} and checkpoint["matched"] == 1

    await topic.event(1, "B", "02")
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, heartbeat_details=[checkpoint], attempt=2)
    resumed: CollectedEvents = await retry.run(
        watch.collect_correlated_events, collect(marked.offsets, "A", "B")
    )

    assert [e.type for e in resumed.events] == ["A", "B"]
    assert (resumed.matched, resumed.read) == (2, 2), "A was not read again"
    assert resumed.positions == {topic.name: {"0": 1, "1": 1}}


def test_new_partitions_are_those_the_cluster_knows_and_the_mark_does_not() -> None:
    positions = {"a": {"0": 5, "1": 2}, "b": {"0": 1}}
    assert new_partitions(positions, {"a": {0, 1, 2, 3}, "b": {0}, "c": {0, 1}}) == {"a": [2, 3]}
    assert new_partitions(positions, {}) == {}
