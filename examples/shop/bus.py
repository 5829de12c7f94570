"""Each service's connection to the broker: one producer, and one consumer of the topics it reacts to.

The consumer assigns itself every partition of its topics (``group_id=None``) instead of joining a
consumer group. Groups do work on the embedded broker, but joining one takes about five seconds
there, and a group member that resets its offset to "latest" can miss what is published while the
reset is in flight. A demo runs one instance of each service, so it needs no group: the consumer
seeks to the end of every partition and resolves those positions before :meth:`ServiceBus.start`
returns, so nothing published after that is missed.

Producers run without idempotence: the embedded broker does not answer ``InitProducerId``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from examples.shop.events import Event, decode_event, encode_event

log = logging.getLogger(__name__)

TOPIC_PARTITIONS = 3
REQUEST_TIMEOUT_MS = 10_000
POLL_TIMEOUT_MS = 200
#: How long the broker may hold a fetch that has nothing for us; short, so each saga hop is quick.
FETCH_MAX_WAIT_MS = 100
CONNECT_RETRY_S = 0.5

Handler = Callable[[Event], Awaitable[None]]


async def ensure_topics(bootstrap: str, topics: Iterable[str], *, timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet, retrying until the broker answers or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await _create_missing(bootstrap, list(topics))
            return
        except (KafkaError, OSError):
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for the Kafka broker at %s", bootstrap)
            await asyncio.sleep(CONNECT_RETRY_S)


async def _create_missing(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await admin.start()
    try:
        missing = [t for t in topics if t not in await admin.list_topics()]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(t, num_partitions=TOPIC_PARTITIONS, replication_factor=1) for t in missing]
        )
        for topic, code, message in getattr(response, "topic_errors", []):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"could not create Kafka topic {topic}: {message}")
    finally:
        await admin.close()


class ServiceBus:
    """Publishes a service's events and hands it, one at a time, the events of the topics it consumes."""

    def __init__(self, bootstrap: str, *, service: str, consumes: Sequence[str], handler: Handler) -> None:
        self.bootstrap = bootstrap
        self.service = service
        self.consumes = tuple(consumes)
        self.handler = handler
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, and position the consumer at the end of its topics before returning."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            client_id=f"shop-{self.service}",
        )
        await producer.start()
        self._producer = producer
        if not self.consumes:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            client_id=f"shop-{self.service}",
        )
        await consumer.start()
        self._consumer = consumer
        await consumer.topics()  # refreshes the metadata, so the new topics' partitions are known
        partitions = [
            TopicPartition(topic, p)
            for topic in self.consumes
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if len(partitions) < len(self.consumes):
            raise RuntimeError(f"the {self.service} service found no partitions for {self.consumes}")
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        self._task = asyncio.create_task(self._consume(consumer), name=f"shop-{self.service}-consumer")

    async def publish(self, topic: str, event: Event) -> None:
        """Send the event keyed by its order id, and wait until the broker has it."""
        if self._producer is None:
            raise RuntimeError(f"the {self.service} service's bus is not started")
        await self._producer.send_and_wait(
            topic,
            encode_event(event),
            key=event["order_id"].encode(),
            headers=[("type", event["type"].encode())],
        )
        log.info("%s published %s for order %s", self.service, event["type"], event["order_id"])

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
            for records in batches.values():
                for record in records:
                    event = decode_event(record.value)
                    if event is None:
                        log.warning("%s skipped a message that is not a shop event", self.service)
                        continue
                    try:
                        await self.handler(event)
                    except Exception:
                        log.exception("%s failed to handle %s", self.service, event["type"])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
