"""Watching Kafka topics for a saga test: where they end now, and what arrives after that.

A test marks the end of every partition of its topics *before* it triggers anything, and
its consumer reads from exactly those offsets: an event published after the mark is never
missed, however late the consumer starts. A partition added to a topic after the mark is
read from its start: all of it came later. The consumer looks for such partitions when it
starts and every :data:`METADATA_REFRESH_S` while it reads. Consumers assign themselves the
partitions (``group_id=None``) and commit nothing; a test needs no consumer group.

Failures: ``TopicNotFound`` (a listed topic does not exist; final). Broker errors are
retried by the workflow's policy; a retried collection carries on from its last heartbeat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import Heartbeat
from crucible.core.saga_tests.models import (
    CollectedEvents,
    CollectEventsInput,
    EventSummary,
    MarkTopicEndsInput,
    TopicOffsets,
)
from crucible.core.saga_tests.records import EventReader, NotJson, Untyped, ordered, summarize

TOPIC_NOT_FOUND = "TopicNotFound"
REQUEST_TIMEOUT_MS = 10_000
#: How long the broker may hold a fetch with nothing for us: short, so settling ends on time.
FETCH_MAX_WAIT_MS = 100
POLL_TIMEOUT_MS = 200
#: A new topic's metadata can lag its creation a little; look this many times before giving up.
METADATA_TRIES = 5
METADATA_RETRY_S = 0.5
#: How often a collecting consumer asks the cluster for partitions added to its topics.
METADATA_REFRESH_S = 2.0
#: Collected summaries kept (and carried in history); more are counted in ``matched`` only.
MAX_COLLECTED = 200


def _checkpoint_of(data: dict[str, Any]) -> CollectedEvents:
    return CollectedEvents(**{**data, "events": [EventSummary(**e) for e in data.get("events", [])]})


class KafkaWatchActivities:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            client_id="crucible-saga-test",
        )

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
        for attempt in range(METADATA_TRIES):
            await consumer.topics()  # refreshes the metadata, so new topics' partitions are known
            missing = [t for t in topics if not consumer.partitions_for_topic(t)]
            if not missing:
                break
            if attempt < METADATA_TRIES - 1:
                await asyncio.sleep(METADATA_RETRY_S)
        else:
            raise ApplicationError(
                f"no such Kafka topic: {', '.join(missing)}", type=TOPIC_NOT_FOUND, non_retryable=True
            )
        return [
            TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic))
        ]

    @activity.defn
    async def mark_topic_ends(self, request: MarkTopicEndsInput) -> TopicOffsets:
        """The next offset of every partition of the topics: where the test starts reading."""
        consumer = self._consumer()
        await consumer.start()
        try:
            ends = await consumer.end_offsets(await self._partitions(consumer, request.topics))
        finally:
            await consumer.stop()
        offsets: dict[str, dict[str, int]] = {topic: {} for topic in request.topics}
        for tp, offset in sorted(ends.items()):
            offsets[tp.topic][str(tp.partition)] = offset
        return TopicOffsets(offsets)

    @activity.defn
    async def collect_correlated_events(self, request: CollectEventsInput) -> CollectedEvents:
        """Read from the marked offsets until every expected type is seen and ``settle_s`` more have
        passed (repeats and late events show up), or until the deadline; the correlation id's events."""
        info = activity.info()
        if info.heartbeat_details:
            checkpoint = _checkpoint_of(info.heartbeat_details[0])
        else:
            positions = {t: dict(parts) for t, parts in request.offsets.offsets.items()}
            checkpoint = CollectedEvents(positions)
        consumer = self._consumer()
        await consumer.start()
        try:
            await adopt_new_partitions(consumer, checkpoint.positions, assign_all=True)
            await self._read(consumer, request, checkpoint)
        finally:
            await consumer.stop()
        checkpoint.events = ordered(checkpoint.events, list(request.offsets.offsets))
        checkpoint.timed_out = checkpoint.complete_at is None
        return checkpoint

    async def _read(
        self, consumer: AIOKafkaConsumer, request: CollectEventsInput, checkpoint: CollectedEvents
    ) -> None:
        reader = EventReader.of(
            request.correlation_path, request.type_path, request.time_path, request.event_id_path
        )
        expected = set(request.expected_types)
        seen = {e.type for e in checkpoint.events}
        next_refresh = time.monotonic() + METADATA_REFRESH_S
        with Heartbeat().running() as beat:
            while True:
                now = time.time()
                done = checkpoint.complete_at is not None and now >= checkpoint.complete_at + request.settle_s
                if done or now >= request.deadline:
                    return
                if time.monotonic() >= next_refresh:
                    await adopt_new_partitions(consumer, checkpoint.positions)
                    next_refresh = time.monotonic() + METADATA_REFRESH_S
                batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
                for tp, records in batches.items():
                    for record in records:
                        self._take(reader, request.correlation_id, checkpoint, tp, record)
                seen |= {e.type for e in checkpoint.events}
                if checkpoint.complete_at is None and expected <= seen:
                    checkpoint.complete_at = time.time()
                beat.now(dataclasses.asdict(checkpoint))

    @staticmethod
    def _take(
        reader: EventReader, correlation_id: str, point: CollectedEvents, tp: TopicPartition, record: Any
    ) -> None:
        point.read += 1
        point.positions[tp.topic][str(tp.partition)] = record.offset + 1
        try:
            summary = summarize(
                reader,
                correlation_id,
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                key=record.key,
                value=record.value,
            )
        except NotJson:
            point.not_json += 1
            return
        except Untyped:
            point.untyped += 1
            return
        if summary is None:
            return
        point.matched += 1
        if len(point.events) < MAX_COLLECTED:
            point.events.append(summary)


def new_partitions(positions: dict[str, dict[str, int]], known: dict[str, set[int]]) -> dict[str, list[int]]:
    """The partitions of the watched topics that ``known`` (the cluster's metadata) has and
    ``positions`` has not: partitions added after the mark."""
    added = {
        topic: sorted(p for p in known.get(topic, set()) if str(p) not in parts)
        for topic, parts in positions.items()
    }
    return {topic: parts for topic, parts in added.items() if parts}


async def adopt_new_partitions(
    consumer: AIOKafkaConsumer, positions: dict[str, dict[str, int]], *, assign_all: bool = False
) -> dict[str, list[int]]:
    """Read partitions added since the mark from offset 0, and the others on from ``positions``
    (updated in place); what was added. ``assign_all``: assign them even when none is new."""
    await consumer.topics()  # asks the cluster, so partitions added since are known
    added = new_partitions(positions, {t: consumer.partitions_for_topic(t) or set() for t in positions})
    for topic, parts in added.items():
        positions[topic].update({str(p): 0 for p in parts})
    if added:
        activity.logger.info("reading partitions added after the mark from their start: %s", added)
    if added or assign_all:
        # assign() starts every partition afresh: seek each to where the test stands in it.
        partitions = [TopicPartition(topic, int(p)) for topic, parts in positions.items() for p in parts]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, positions[tp.topic][str(tp.partition)])
    return added
