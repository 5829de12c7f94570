"""Publishing run events to Kafka, and checking that a broker answers.

Delivery is at least once: a retried batch publishes its events again, so consumers
drop repeats by ``(run_id, seq)``. Events of one run share a key, so they stay in
order on one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from crucible.core.events import RunEvent

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3
REQUEST_TIMEOUT_MS = 10_000
#: A batch that the broker has not taken by then fails, well within the write's activity timeout.
PUBLISH_TIMEOUT_S = 10.0
DROP_TIMEOUT_S = 2.0


def encode_event(event: RunEvent) -> bytes:
    return json.dumps(event.envelope(), separators=(",", ":")).encode()


class EventPublisher:
    """One long-lived producer per process, started on first use.

    A failed send drops the producer, so the next attempt (the activity's retry)
    starts from a fresh connection: that is how publishing recovers from a broker
    restart without restarting the worker.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str,
        idempotence: bool,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.idempotence = idempotence
        self.publish_timeout_s = publish_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    acks="all",
                    enable_idempotence=self.idempotence,
                    request_timeout_ms=REQUEST_TIMEOUT_MS,
                    linger_ms=5,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, events: Sequence[RunEvent], *, fence: int = 0) -> None:
        """Send the events keyed by run id and wait until the broker has them all.

        Headers: ``type``, the event type; ``fence``, which orders the attempts of the
        run's workflow (of two messages with one (run_id, seq), the higher fence is right).
        """
        producer = await self._ensure_producer()

        async def send_all() -> None:
            sends = [
                await producer.send(
                    self.topic,
                    encode_event(event),
                    key=event.run_id.encode(),
                    headers=[("type", event.type.encode()), ("fence", str(fence).encode())],
                )
                for event in events
            ]
            await asyncio.gather(*sends)

        try:
            await asyncio.wait_for(send_all(), self.publish_timeout_s)
        except (KafkaError, OSError, TimeoutError):
            # The broker is unreachable or was restarted: drop this producer with its queued
            # batches and stale metadata; the next attempt starts afresh. (A cancelled send
            # leaves the shared producer alone: other runs are using it.)
            await self._drop(producer)
            raise

    async def _drop(self, producer: AIOKafkaProducer) -> None:
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        # A broken producer's stop() waits for its queued batches, which a broker that is
        # down never takes; end its sender first, so that nothing it queued is sent later,
        # with stale metadata, to a broker that has restarted in the meantime.
        sender = getattr(producer, "_sender", None)
        with contextlib.suppress(Exception):
            if sender is not None:
                await asyncio.wait_for(sender.close(), DROP_TIMEOUT_S)
        try:
            await asyncio.wait_for(producer.stop(), DROP_TIMEOUT_S)
        except Exception:  # the producer is already broken; nothing more to release
            log.debug("stopping a failed Kafka producer raised", exc_info=True)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._drop(self._producer)


async def ping_kafka(bootstrap_servers: str, *, timeout_s: float = 3.0) -> None:
    """Raise unless a broker answers a metadata request within ``timeout_s``."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
    finally:
        await client.close()


async def ensure_topic(bootstrap_servers: str, topic: str, *, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create ``topic`` unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            return
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        for _topic, code, message in getattr(response, "topic_errors", []):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"could not create Kafka topic {topic}: {message}")
    finally:
        await admin.close()
