"""Writing a run's events: to PostgreSQL (the system of record), then to Kafka."""

from __future__ import annotations

from temporalio import activity

from crucible.core.events import RecordEventsInput
from crucible.core.kafka import EventPublisher
from crucible.core.store import RunStore


class EventActivities:
    """The event sink. Workflows call it as a local activity, in batches."""

    def __init__(self, store: RunStore, publisher: EventPublisher) -> None:
        self.store = store
        self.publisher = publisher

    @activity.defn
    async def record_events(self, batch: RecordEventsInput) -> int:
        """Upsert the batch on (run_id, seq), update the run's row, publish to Kafka.

        Safe to retry: PostgreSQL ignores events it already has; Kafka may see them
        again, and its consumers drop repeats by (run_id, seq). Returns how many
        events were new to PostgreSQL.
        """
        new = await self.store.record(batch)
        await self.publisher.publish(batch.events)
        activity.metric_meter().create_counter(
            "crucible_events_recorded", "Run events written to PostgreSQL"
        ).add(new)
        return new
