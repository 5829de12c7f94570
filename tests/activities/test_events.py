"""The event sink against real PostgreSQL and the real broker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaConnectionError
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from crucible.activities.events import EventActivities
from crucible.core.events import RecordEventsInput, RunEvent
from crucible.core.kafka import EventPublisher
from crucible.core.runs import RunSnapshot, RunStatus, new_run_id
from crucible.core.store import RunStore, fetch_all_events
from crucible.worker import WorkerDeps, build_worker
from tests.conftest import EVENTS_TOPIC
from tests.support.probe import ProbeInput, ProbeWorkflow
from tests.support.runs import kafka_events, start_probe
from tests.support.servers import KafkaBroker


def _batch(run_id: str, types: list[str], first_seq: int = 1) -> RecordEventsInput:
    at = datetime.now(UTC)
    terminal = types[-1] == "COMPLETE"
    return RecordEventsInput(
        run=RunSnapshot(
            run_id=run_id,
            kind="probe",
            status=RunStatus.COMPLETED if terminal else RunStatus.RUNNING,
            closed_at=at if terminal else None,
        ),
        events=[
            RunEvent(run_id=run_id, seq=first_seq + i, type=t, at=at + timedelta(milliseconds=i))
            for i, t in enumerate(types)
        ],
    )


async def test_a_repeated_write_lands_once_in_postgres_and_again_on_kafka(
    store: RunStore, publisher: EventPublisher, kafka: KafkaBroker
) -> None:
    sink = EventActivities(store, publisher)
    run_id = new_run_id("probe")
    env = ActivityEnvironment()

    assert (await env.run(sink.record_events, _batch(run_id, ["REQUESTED", "STEP"]))).written == 2
    assert (await env.run(sink.record_events, _batch(run_id, ["REQUESTED", "STEP"]))).written == 0
    assert (await env.run(sink.record_events, _batch(run_id, ["COMPLETE"], first_seq=3))).written == 1

    assert [(e.seq, e.type) for e in await fetch_all_events(store, run_id)] == [
        (1, "REQUESTED"),
        (2, "STEP"),
        (3, "COMPLETE"),
    ]
    on_kafka = await kafka_events(kafka.bootstrap, EVENTS_TOPIC, run_id)
    assert [e["seq"] for e in on_kafka] == [1, 2, 1, 2, 3]  # at least once, in order per write
    deduplicated = sorted({(e["run_id"], e["seq"]) for e in on_kafka})
    assert deduplicated == [(run_id, 1), (run_id, 2), (run_id, 3)]


class FailsOnceAfterTheDatabase(EventPublisher):
    """The real publisher, except that each batch's first publish fails.

    That is the worst moment for a retry: PostgreSQL already has the batch.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.failed: set[tuple[str, int]] = set()

    async def publish(self, events: Sequence[RunEvent], *, fence: int = 0) -> None:
        key = (events[0].run_id, events[0].seq)
        if key not in self.failed:
            self.failed.add(key)
            raise KafkaConnectionError("broker connection lost")
        await super().publish(events, fence=fence)


async def test_a_run_whose_writes_are_retried_has_every_event_exactly_once(
    client: Client, store: RunStore, kafka: KafkaBroker, task_queue: str
) -> None:
    publisher = FailsOnceAfterTheDatabase(kafka.bootstrap, topic=EVENTS_TOPIC, idempotence=False)
    worker = build_worker(
        client,
        WorkerDeps(store=store, publisher=publisher),
        task_queue=task_queue,
        workflows=[ProbeWorkflow],
    )
    async with worker:
        handle = await start_probe(client, task_queue, ProbeInput(steps=5))
        await handle.result()
    await publisher.stop()

    stored = await fetch_all_events(store, handle.id)
    assert [e.seq for e in stored] == list(range(1, 8))
    assert len(publisher.failed) == 3  # every batch failed once and was written again
    on_kafka = await kafka_events(kafka.bootstrap, EVENTS_TOPIC, handle.id)
    assert sorted({e["seq"] for e in on_kafka}) == [e.seq for e in stored]
    run = await store.get_run(handle.id)
    assert run is not None and (run.status, run.last_seq) == ("COMPLETED", 7)
