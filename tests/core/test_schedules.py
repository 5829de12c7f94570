"""Temporal Schedules through crucible.core.schedules, against the real dev server.

Schedules here start probe runs on the test's own task queue.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.worker import Worker

from crucible.core.errors import InvalidRequestError, ScheduleExistsError, ScheduleNotFoundError
from crucible.core.retention import RETENTION_WORKFLOW
from crucible.core.runs import DEFAULT_TEAM
from crucible.core.schedules import (
    MAX_BACKFILL_ACTIONS,
    RETENTION_SCHEDULE_ID,
    ScheduledStart,
    ScheduleOptions,
    ScheduleView,
    backfill_schedule,
    check_cron,
    check_time_zone,
    count_actions,
    create_schedule,
    delete_schedule,
    describe_schedule,
    ensure_retention_schedule,
    list_schedules,
    pause_schedule,
    schedule_id_for,
    trigger_schedule,
    unpause_schedule,
)
from crucible.core.temporal import KIND_KEY, TEAM_KEY
from tests.support.probe import PROBE_KIND, ProbeInput, ProbeWorkflow

YEARLY = "0 0 1 1 *"


def probe_start(task_queue: str) -> ScheduledStart:
    return ScheduledStart(
        kind=PROBE_KIND,
        workflow=ProbeWorkflow.run,
        arg=ProbeInput(steps=1),
        task_queue=task_queue,
        summary={"steps": 1},
        team_id="core-schedules",
    )


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def eventually(
    read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout: float = 15
) -> Any:
    async with asyncio.timeout(timeout):
        while not done(value := await read()):
            await asyncio.sleep(0.2)
    return value


# Options, checked before Temporal sees them


@pytest.mark.parametrize(
    ("name", "schedule_id"),
    [
        ("Nightly orders", "nightly-orders"),
        ("  --Café au lait!! ", "cafe-au-lait"),
        ("x" * 70, "x" * 60),
        ("a" * 59 + "-b", "a" * 59),
    ],
)
def test_a_name_becomes_a_readable_id(name: str, schedule_id: str) -> None:
    assert schedule_id_for(name) == schedule_id


@pytest.mark.parametrize("name", ["!!!", "crucible retention"])
def test_a_name_without_letters_or_a_reserved_one_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        schedule_id_for(name)


@pytest.mark.parametrize("expression", ["*/5 * * * *", "17  3 * * MON-FRI", "0 0 1 jan *", "@daily"])
def test_cron_expressions_temporal_takes(expression: str) -> None:
    assert check_cron(expression) == " ".join(expression.split())


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "it has 3 fields"),
        ("", "it has 0 fields"),
        ("0 0 * * 1#2", "day-of-week field '1#2'"),  # Temporal would read "#2" as a comment
        ("0 0 L * *", "day-of-month field 'L'"),
        ("0 0 ? * *", "day-of-month field '?'"),
        ("@every 5s", "shorthands are"),
        ("0 0 30 2 *", "never matches"),
    ],
)
def test_a_bad_cron_expression_is_named_with_the_reason(expression: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_cron(expression)
    assert repr(expression) in str(caught.value) and why in str(caught.value)


def test_time_zones_are_iana_names() -> None:
    assert check_time_zone("Europe/Paris") == "Europe/Paris"
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(ValueError, match="not an IANA time zone"):
            check_time_zone(bad)


def test_options_list_every_mistake() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        ScheduleOptions(cron="nope", time_zone="Nowhere/Land", overlap="sometimes")
    assert {e.loc for e in caught.value.errors} == {
        ("body", "cron"),
        ("body", "time_zone"),
        ("body", "overlap"),
    }
    for timing in ({}, {"cron": YEARLY, "interval_s": 60}):
        with pytest.raises(InvalidRequestError, match="either cron or interval_s"):
            ScheduleOptions(**timing)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="at least 1 second"):
        ScheduleOptions(interval_s=0)


def test_actions_in_a_period_are_counted() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=3)
    assert (
        count_actions(cron="0 12 * * *", interval_s=None, time_zone="UTC", start=start, end=end, cap=100) == 3
    )
    # Noon in Tokyo is 03:00 UTC: three of them fall between the 1st and the 4th, 00:00 UTC.
    assert (
        count_actions(cron="0 12 * * *", interval_s=None, time_zone="Asia/Tokyo", start=start, end=end, cap=9)
        == 3
    )
    assert count_actions(cron=None, interval_s=3600, time_zone=None, start=start, end=end, cap=10) == 10
    half_past = start + timedelta(minutes=30)
    hour = timedelta(hours=1)
    assert (
        count_actions(
            cron=None, interval_s=3600, time_zone=None, start=half_past, end=half_past + hour, cap=9
        )
        == 1
    )
    assert (
        count_actions(cron=None, interval_s=3600, time_zone=None, start=start, end=start + hour, cap=9) == 2
    )


# Schedules on the real server


async def test_an_interval_schedule_starts_runs_with_readable_ids(client: Client, worker: Worker) -> None:
    schedule_id = new_id()
    view = await create_schedule(
        client,
        schedule_id,
        probe_start(worker.task_queue),
        ScheduleOptions(interval_s=1, overlap="allow_all"),
    )
    try:
        assert (view.schedule_id, view.kind, view.target, view.interval_s) == (
            schedule_id,
            "probe",
            {"steps": 1},
            1,
        )
        assert (view.overlap, view.paused, view.pause_on_failure) == ("allow_all", False, False)
        assert view.next_action_times and view.created_at is not None

        view = await eventually(
            lambda: describe_schedule(client, schedule_id), lambda v: len(v.recent_actions) >= 2
        )
        run_id = view.recent_actions[0].run_id
        assert run_id.startswith(f"probe-{schedule_id}-20") and run_id.endswith("Z")
        assert view.recent_actions[0].scheduled_at > view.recent_actions[1].scheduled_at  # newest first
        described = await client.get_workflow_handle(run_id).describe()
        assert described.typed_search_attributes.get(KIND_KEY) == "probe"
        assert described.typed_search_attributes.get(TEAM_KEY) == "core-schedules"

        listed = await eventually(
            lambda: _ids(client, "CrucibleKind = 'probe'"), lambda ids: schedule_id in ids
        )
        assert schedule_id in listed
    finally:
        await delete_schedule(client, schedule_id)
    with pytest.raises(ScheduleNotFoundError):
        await describe_schedule(client, schedule_id)


async def _ids(client: Client, query: str) -> list[str]:
    return [entry.id async for entry in await client.list_schedules(query)]


async def test_pause_trigger_unpause_and_backfill(client: Client, worker: Worker) -> None:
    schedule_id = new_id()
    options = ScheduleOptions(cron="0 * * * *", time_zone="Europe/Paris", paused=True, note="held for a test")
    view = await create_schedule(client, schedule_id, probe_start(worker.task_queue), options)
    try:
        assert (view.paused, view.note, view.cron, view.time_zone) == (
            True,
            "held for a test",
            "0 * * * *",
            "Europe/Paris",
        )

        await trigger_schedule(client, schedule_id)  # a paused schedule still takes a triggered action
        view = await eventually(lambda: describe_schedule(client, schedule_id), lambda v: v.recent_actions)
        assert len(view.recent_actions) == 1

        view = await unpause_schedule(client, schedule_id, note="back on")
        assert (view.paused, view.note) == (False, "back on")
        view = await pause_schedule(client, schedule_id)
        assert (view.paused, view.note) == (True, "paused through Crucible")

        start = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
        actions = await backfill_schedule(
            client, schedule_id, start=start, end=start + timedelta(hours=3), overlap="allow_all"
        )
        assert actions == 3
        view = await eventually(
            lambda: describe_schedule(client, schedule_id), lambda v: len(v.recent_actions) >= 4
        )
        backfilled = sorted(a.run_id for a in view.recent_actions if "2025-06-01" in a.run_id)
        assert backfilled == [f"probe-{schedule_id}-2025-06-01T{h}:00:00Z" for h in ("10", "11", "12")]
    finally:
        await delete_schedule(client, schedule_id)


async def test_a_failed_run_pauses_a_schedule_that_asks_for_it(client: Client, worker: Worker) -> None:
    schedule_id = new_id()
    failing = ScheduledStart(
        PROBE_KIND, ProbeWorkflow.run, ProbeInput(fail_with="boom"), worker.task_queue, {}
    )
    view = await create_schedule(
        client, schedule_id, failing, ScheduleOptions(cron=YEARLY, pause_on_failure=True)
    )
    try:
        assert (view.pause_on_failure, view.paused) == (True, False)
        await trigger_schedule(client, schedule_id)
        view = await eventually(lambda: describe_schedule(client, schedule_id), lambda v: v.paused)
        assert view.note  # Temporal says why
    finally:
        await delete_schedule(client, schedule_id)


async def test_ids_are_unique_and_unknown_ones_are_not_found(client: Client, worker: Worker) -> None:
    schedule_id = new_id()
    await create_schedule(client, schedule_id, probe_start(worker.task_queue), ScheduleOptions(cron=YEARLY))
    try:
        with pytest.raises(ScheduleExistsError, match=schedule_id):
            await create_schedule(
                client, schedule_id, probe_start(worker.task_queue), ScheduleOptions(cron=YEARLY)
            )
        start = datetime(2020, 1, 1, tzinfo=UTC)
        with pytest.raises(InvalidRequestError, match="end must be after start"):
            await backfill_schedule(client, schedule_id, start=start, end=start)
        with pytest.raises(InvalidRequestError, match=f"more than {MAX_BACKFILL_ACTIONS} times"):
            await backfill_schedule(client, schedule_id, start=start, end=start.replace(year=3100))
    finally:
        await delete_schedule(client, schedule_id)

    missing = new_id()
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: describe_schedule(client, missing),
        lambda: pause_schedule(client, missing),
        lambda: unpause_schedule(client, missing),
        lambda: trigger_schedule(client, missing),
        lambda: backfill_schedule(client, missing, start=datetime(2020, 1, 1), end=datetime(2020, 1, 2)),
        lambda: delete_schedule(client, missing),
    ]
    for call in calls:
        with pytest.raises(ScheduleNotFoundError, match=missing):
            await call()


async def test_the_list_pages_through_crucible_schedules_only(client: Client, worker: Worker) -> None:
    kind = f"k{uuid.uuid4().hex[:8]}"
    ids = sorted(new_id() for _ in range(3))
    for schedule_id in ids:
        start = ScheduledStart(kind, ProbeWorkflow.run, ProbeInput(), worker.task_queue, {"n": schedule_id})
        await create_schedule(client, schedule_id, start, ScheduleOptions(cron=YEARLY, paused=True))
    try:
        await eventually(lambda: _ids(client, f"CrucibleKind = '{kind}'"), lambda found: len(found) == 3)
        seen: list[ScheduleView] = []
        cursor = None
        for _ in range(5):
            page = await list_schedules(client, team_ids=[DEFAULT_TEAM], kind=kind, limit=2, after=cursor)
            seen += page.items
            if (cursor := page.next_cursor) is None:
                break
        assert [v.schedule_id for v in seen] == ids  # in id order
        assert {v.kind for v in seen} == {kind} and all(v.paused and v.cron == YEARLY for v in seen)
        assert sorted(v.target["n"] for v in seen) == ids
        first = await list_schedules(client, team_ids=[DEFAULT_TEAM], kind=kind, limit=2)
        assert first.next_cursor == ids[1]
        # A page starts after any id given, listed or not; other teams' schedules are not listed.
        rest = await list_schedules(client, team_ids=[DEFAULT_TEAM], kind=kind, after=ids[0] + "!")
        assert [v.schedule_id for v in rest.items] == ids[1:] and rest.next_cursor is None
        assert (await list_schedules(client, team_ids=["another-team"], kind=kind)).items == []
        with pytest.raises(InvalidRequestError, match="not a kind"):
            await list_schedules(client, team_ids=[DEFAULT_TEAM], kind="qa' OR 1=1")
    finally:
        for schedule_id in ids:
            await delete_schedule(client, schedule_id)


async def test_the_retention_schedule_is_ensured_once_and_keeps_a_pause(client: Client) -> None:
    try:
        await ensure_retention_schedule(client, task_queue="retention-test", days=30, cron="17 3 * * *")
        handle = await ensure_retention_schedule(
            client, task_queue="retention-test", days=7, cron="17 4 * * *"
        )
        assert handle is not None
        description = await handle.describe()
        assert description.schedule.action.workflow == RETENTION_WORKFLOW  # type: ignore[attr-defined]
        assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert [t.astimezone(UTC).strftime("%H:%M") for t in description.info.next_action_times[:1]] == [
            "04:17"
        ]
        listed = await eventually(lambda: _ids(client, ""), lambda ids: RETENTION_SCHEDULE_ID in ids)
        assert listed.count(RETENTION_SCHEDULE_ID) == 1

        await handle.pause(note="an operator paused it")
        await ensure_retention_schedule(client, task_queue="retention-test", days=7, cron="17 4 * * *")
        assert (await handle.describe()).schedule.state.paused
    finally:
        assert (
            await ensure_retention_schedule(client, task_queue="retention-test", days=0, cron="17 3 * * *")
            is None
        )
    with pytest.raises(ScheduleNotFoundError):
        await describe_schedule(client, RETENTION_SCHEDULE_ID)
    # Disabling twice is fine.
    await ensure_retention_schedule(client, task_queue="retention-test", days=0, cron="17 3 * * *")
