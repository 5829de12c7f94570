"""The baseline's sink: takes the same batches as the real one and writes nothing."""

from __future__ import annotations

from temporalio import activity

from crucible.core.events import RecordEventsInput


@activity.defn
async def discard_events(batch: RecordEventsInput) -> int:
    """Accept a batch of events and drop it; returns how many events it carried."""
    return len(batch.events)
