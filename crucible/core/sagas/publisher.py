"""Publishing a saga's Kafka actions and compensations."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from crucible.core.kafka import EventPublisher


class MessagePublisher(EventPublisher):
    """One producer per worker for the messages sagas publish, to the topics they name.

    It is configured, started and recovered as the run events' publisher is (acks from
    every replica, idempotence as the settings say, a fresh producer after a failed send);
    the events' topic is not used.
    """

    @classmethod
    def like(cls, publisher: EventPublisher) -> MessagePublisher:
        """A publisher to the same brokers, with the same settings, as ``publisher``."""
        return cls(
            publisher.bootstrap_servers,
            topic=publisher.topic,
            idempotence=publisher.idempotence,
            publish_timeout_s=publisher.publish_timeout_s,
        )

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> RecordMetadata:
        """Send one message and wait until the broker has it."""
        producer = await self._ensure_producer()
        try:
            return await asyncio.wait_for(
                producer.send_and_wait(topic, value, key=key, headers=headers), self.publish_timeout_s
            )
        except (KafkaError, OSError, TimeoutError):
            await self._drop(producer)
            raise
