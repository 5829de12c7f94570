"""The run store: idempotent writes, forward-only rows, pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crucible.core.events import EventType, RecordEventsInput, RecordEventsResult, RunEvent
from crucible.core.runs import RunSnapshot, RunStatus, new_run_id
from crucible.core.store import InvalidCursorError, RunStore, fetch_all_events
from crucible.core.tables import Run

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batch(
    run_id: str,
    seqs: range,
    *,
    state: str | None = None,
    status=RunStatus.RUNNING,
    fence: int = 0,
    types: list[str] | None = None,
) -> RecordEventsInput:
    return RecordEventsInput(
        run=RunSnapshot(run_id=run_id, kind="probe", state=state, status=status, created_at=T0),
        events=[
            RunEvent(
                run_id=run_id,
                seq=s,
                type=types[i] if types else "STEP",
                at=T0 + timedelta(seconds=s),
                data={"n": s},
            )
            for i, s in enumerate(seqs)
        ],
        fence=fence,
    )


async def test_a_retried_batch_changes_nothing(store: RunStore) -> None:
    run_id = new_run_id("probe")
    assert (await store.record(batch(run_id, range(1, 4)))).written == 3
    assert (await store.record(batch(run_id, range(1, 4)))).written == 0
    assert (await store.record(batch(run_id, range(3, 6)))).written == 2  # overlapping retry + new

    events = await fetch_all_events(store, run_id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.data["n"] for e in events] == [1, 2, 3, 4, 5]
    assert (await store.get_run(run_id)).last_seq == 5  # type: ignore[union-attr]


async def test_an_older_batch_never_moves_the_row_back(store: RunStore) -> None:
    run_id = new_run_id("probe")
    await store.record(batch(run_id, range(1, 3), state="Early"))
    await store.record(batch(run_id, range(3, 5), state="Late"))
    await store.record(batch(run_id, range(1, 3), state="Early"))  # a late retry of the first batch

    run = await store.get_run(run_id)
    assert run is not None
    assert (run.state, run.last_seq) == ("Late", 4)


async def test_an_empty_batch_is_refused(store: RunStore) -> None:
    with pytest.raises(ValueError, match="at least one event"):
        await store.record(RecordEventsInput(run=RunSnapshot(run_id="probe-x", kind="probe"), events=[]))


async def test_a_later_attempt_replaces_what_an_abandoned_one_wrote(store: RunStore) -> None:
    """Temporal threw a workflow task away after its local activities wrote (say a cancel
    arrived as the run was completing); the retried task took another path."""
    run_id = new_run_id("probe")
    await store.record(batch(run_id, range(1, 2), fence=3, types=["REQUESTED"]))
    abandoned = batch(run_id, range(2, 4), fence=7, types=["STEP", "COMPLETE"], status=RunStatus.COMPLETED)
    await store.record(abandoned)

    retried = batch(run_id, range(2, 3), fence=11, types=["CANCELLED"], status=RunStatus.CANCELLED)
    assert (await store.record(retried)).written == 1

    assert [(e.seq, e.type) for e in await fetch_all_events(store, run_id)] == [
        (1, "REQUESTED"),
        (2, "CANCELLED"),
    ]
    run = await store.get_run(run_id)
    assert run is not None and (run.status, run.last_seq) == ("CANCELLED", 2)

    # The abandoned attempt's worker, late, retries its write: it changes nothing.
    assert await store.record(abandoned) == RecordEventsResult(written=0, abandoned=True)
    assert [e.type for e in await fetch_all_events(store, run_id)] == ["REQUESTED", "CANCELLED"]


async def test_close_run_ends_the_log_once_and_shuts_out_late_writes(store: RunStore) -> None:
    run_id = new_run_id("probe")
    await store.record(batch(run_id, range(1, 3), fence=5))
    row = await store.get_run(run_id)
    assert row is not None

    first = await store.close_run(row, status=RunStatus.TERMINATED, data={"reason": "terminated"})
    second = await store.close_run(row, status=RunStatus.TERMINATED, data={"reason": "terminated"})

    assert first is not None and (first.seq, first.type) == (3, EventType.FAILED)
    assert second is None
    run = await store.get_run(run_id)
    assert run is not None and run.status == "TERMINATED" and run.closed_at is not None
    assert run.last_seq == 3

    late = await store.record(batch(run_id, range(3, 5), fence=9))  # a write still in flight
    assert late.abandoned
    assert [e.type for e in await fetch_all_events(store, run_id)] == ["STEP", "STEP", "FAILED"]


async def test_close_run_of_a_run_that_never_wrote(store: RunStore) -> None:
    run_id = new_run_id("probe")
    provisional = Run(
        run_id=run_id,
        kind="probe",
        org_id="acme",
        team_id="payments",
        status="RUNNING",
        created_at=T0,
        updated_at=T0,
    )
    event = await store.close_run(provisional, status=RunStatus.TIMED_OUT, data={"reason": "timed_out"})
    assert event is not None and (event.seq, event.type) == (1, "FAILED")
    run = await store.get_run(run_id)
    assert run is not None
    assert (run.status, run.team_id, run.last_seq) == ("TIMED_OUT", "payments", 1)


async def test_list_pages_through_every_run_once(store: RunStore) -> None:
    kind = f"k{new_run_id('x')[-8:]}"
    ids = []
    for i in range(7):
        run_id = new_run_id(kind)
        ids.append(run_id)
        record = batch(run_id, range(1, 2))
        record.run.kind = kind
        record.run.created_at = T0 + timedelta(minutes=i)
        record.run.status = RunStatus.COMPLETED if i % 2 else RunStatus.RUNNING
        await store.record(record)

    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs(kind=kind, limit=3, cursor=cursor)
        seen += [r.run_id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(ids))  # newest first, no repeats, none missing

    completed = await store.list_runs(kind=kind, status=RunStatus.COMPLETED)
    assert {r.run_id for r in completed.items} == {ids[i] for i in (1, 3, 5)}


async def test_a_forged_cursor_is_refused(store: RunStore) -> None:
    with pytest.raises(InvalidCursorError):
        await store.list_runs(cursor="not-a-cursor")
