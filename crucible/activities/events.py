"""Writing a run's events: to PostgreSQL (the system of record), then to Kafka."""

from __future__ import annotations

from temporalio import activity

from crucible.core.events import RecordEventsInput, RecordEventsResult
from crucible.core.kafka import EventPublisher
from crucible.core.store import RunStore


class EventActivities:
    """The event sink. Workflows call it as a local activity, in batches."""

    def __init__(self, store: RunStore, publisher: EventPublisher) -> None:
        self.store = store
        self.publisher = publisher

    @activity.defn
    async def record_events(self, batch: RecordEventsInput) -> RecordEventsResult:
        """Upsert the batch on (run_id, seq), update the run's row, publish to Kafka.

        Safe to retry: PostgreSQL ignores events it already has; Kafka may see them
        again, and its consumers drop repeats by (run_id, seq). A batch from an attempt
        that a later one has overtaken is neither stored nor published.
        """
        result = await self.store.record(batch)
        if result.abandoned:
            activity.logger.info("ignored events of an abandoned attempt of %s", batch.run.run_id)
            return result
        await self.publisher.publish(batch.events, fence=batch.fence)
        activity.metric_meter().create_counter(
            "crucible_events_recorded", "Run events written to PostgreSQL"
        ).add(result.written)
        return result
