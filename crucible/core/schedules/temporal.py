"""Temporal Schedules that start Crucible runs: create, list, describe, pause, trigger, backfill, delete.

Crucible schedules nothing itself: a schedule is a Temporal Schedule whose action starts
one kind of run. This module turns Crucible's options (a cron expression or an interval,
a time zone, an overlap policy, pause on failure) into Temporal's, and a schedule's
description back into plain values.

Ids are readable. A schedule's id is its name, slugified (``nightly-orders``), and its
action's workflow id is ``<kind>-<schedule id>``, to which Temporal appends the action's
time: a run id says which schedule started it (:func:`crucible.core.runs.schedule_of`).
Schedules carry the runs' search attributes (``CrucibleKind``, ``CrucibleOrg``,
``CrucibleTeam``), on themselves and on the runs they start, and a memo with what they run
(never a secret value) and the options as given, since Temporal keeps a cron expression
only in its compiled, calendar form.

Errors: :class:`ScheduleNotFoundError`, :class:`ScheduleExistsError`, and
:class:`InvalidRequestError` for options or a backfill Temporal would refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleListDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from crucible.core.config import Settings
from crucible.core.errors import InvalidRequestError, ScheduleExistsError, ScheduleNotFoundError
from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM
from crucible.core.schedules.options import OVERLAP_POLICIES, ScheduleOptions, count_actions
from crucible.core.temporal import ORG_KEY, TEAM_KEY, run_search_attributes

_OVERLAP_NAMES = {policy: name for name, policy in OVERLAP_POLICIES.items()}
#: A backfill may start at most this many runs.
MAX_BACKFILL_ACTIONS = 1000
#: What a schedule's memo holds under this key: the target's summary and the options as given.
MEMO_KEY = "crucible"
_KIND = re.compile(r"[a-z][a-z0-9]*")


@dataclass(frozen=True)
class ScheduledStart:
    """The run a schedule starts: its workflow, argument and queue, and a summary for readers.

    ``summary`` goes into the schedule's memo, so it must hold no secret value.
    """

    kind: str
    workflow: Callable[..., Any]
    arg: Any
    task_queue: str
    summary: dict[str, Any]
    org_id: str = DEFAULT_ORG
    team_id: str = DEFAULT_TEAM


@dataclass(frozen=True)
class ScheduledAction:
    """A run a schedule started."""

    run_id: str
    scheduled_at: datetime
    started_at: datetime


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as Crucible shows it. Lists fill in fewer fields than a description."""

    schedule_id: str
    kind: str | None
    target: dict[str, Any]
    cron: str | None
    interval_s: int | None
    time_zone: str | None
    paused: bool
    note: str | None
    next_action_times: list[datetime]
    recent_actions: list[ScheduledAction]  # newest first
    overlap: str | None = None
    pause_on_failure: bool | None = None
    running: list[str] = field(default_factory=list)
    actions_taken: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    org_id: str = DEFAULT_ORG
    team_id: str = DEFAULT_TEAM


@dataclass(frozen=True)
class SchedulePage:
    items: list[ScheduleView]
    next_cursor: str | None


@contextmanager
def _known(schedule_id: str) -> Iterator[None]:
    """Temporal's "not found" (a scheduler workflow it does not know) as ScheduleNotFoundError."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleNotFoundError(schedule_id) from exc
        raise


def _memo(start: ScheduledStart, options: ScheduleOptions) -> dict[str, Any]:
    return {
        MEMO_KEY: {
            "kind": start.kind,
            "target": start.summary,
            "cron": options.cron,
            "interval_s": options.interval_s,
            "time_zone": options.time_zone,
        }
    }


async def create_schedule(
    client: Client, schedule_id: str, start: ScheduledStart, options: ScheduleOptions
) -> ScheduleView:
    """Create a schedule that starts ``start`` as ``options`` say; its description.

    Raises:
        ScheduleExistsError: a schedule with this id exists.
        InvalidRequestError: Temporal refused the options.
    """
    attributes = run_search_attributes(kind=start.kind, org_id=start.org_id, team_id=start.team_id)
    action = ScheduleActionStartWorkflow(
        start.workflow,
        start.arg,
        id=f"{start.kind}-{schedule_id}",
        task_queue=start.task_queue,
        typed_search_attributes=attributes,
        static_summary=f"{start.kind} run started by schedule {schedule_id}",
    )
    schedule = Schedule(
        action=action,
        spec=options.spec(),
        policy=SchedulePolicy(
            overlap=OVERLAP_POLICIES[options.overlap], pause_on_failure=options.pause_on_failure
        ),
        state=ScheduleState(paused=options.paused, note=options.note),
    )
    try:
        handle = await client.create_schedule(
            schedule_id, schedule, memo=_memo(start, options), search_attributes=attributes
        )
    except ScheduleAlreadyRunningError:
        raise ScheduleExistsError(schedule_id) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise InvalidRequestError.one(("body",), f"Temporal refused the schedule: {exc.message}") from exc
        raise
    return await _view(await handle.describe())


async def describe_schedule(client: Client, schedule_id: str) -> ScheduleView:
    with _known(schedule_id):
        return await _view(await client.get_schedule_handle(schedule_id).describe())


async def list_schedules(
    client: Client,
    *,
    team_ids: list[str],
    kind: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> SchedulePage:
    """Schedules of Crucible runs of the teams ``team_ids`` (of one ``kind``), by id, a page at a time.

    A page starts after the schedule id ``after`` (the previous page's ``next_cursor``). A
    team has tens of schedules, not thousands, so each page reads the team's list and sorts
    it. Temporal's list is eventually consistent: a schedule created a moment ago may be
    missing from it for a moment, one deleted may still be there.
    """
    if kind is not None and not _KIND.fullmatch(kind):
        raise InvalidRequestError.one(("query", "kind"), f"{kind!r} is not a kind of run")
    if not team_ids:
        return SchedulePage(items=[], next_cursor=None)
    teams = ", ".join("'" + team.replace("\\", "\\\\").replace("'", "\\'") + "'" for team in team_ids)
    query = f"{TEAM_KEY.name} IN ({teams}) AND " + (
        f"CrucibleKind = '{kind}'" if kind else "CrucibleKind IS NOT NULL"
    )
    listed = sorted([entry async for entry in await client.list_schedules(query)], key=lambda e: e.id)
    rest = [entry for entry in listed if after is None or entry.id > after]
    page = rest[:limit]
    items = [await _listed(entry) for entry in page]
    return SchedulePage(items=items, next_cursor=page[-1].id if len(rest) > limit else None)


async def pause_schedule(client: Client, schedule_id: str, *, note: str | None = None) -> ScheduleView:
    handle = client.get_schedule_handle(schedule_id)
    with _known(schedule_id):
        await handle.pause(note=note or "paused through Crucible")
        return await _view(await handle.describe())


async def unpause_schedule(client: Client, schedule_id: str, *, note: str | None = None) -> ScheduleView:
    handle = client.get_schedule_handle(schedule_id)
    with _known(schedule_id):
        await handle.unpause(note=note or "unpaused through Crucible")
        return await _view(await handle.describe())


async def trigger_schedule(client: Client, schedule_id: str, *, overlap: str | None = None) -> None:
    """Take the schedule's action now (paused or not); ``overlap`` overrides its policy once."""
    with _known(schedule_id):
        await client.get_schedule_handle(schedule_id).trigger(overlap=_overlap(overlap))


async def backfill_schedule(
    client: Client, schedule_id: str, *, start: datetime, end: datetime, overlap: str | None = None
) -> int:
    """Take the actions the schedule would have taken from ``start`` to ``end``; about how many.

    Naive datetimes are UTC. Without ``overlap`` the schedule's own policy applies, and
    ``skip`` then starts only the first of runs that would overlap.

    Raises:
        InvalidRequestError: ``start`` is not before ``end``, or the period holds more than
            :data:`MAX_BACKFILL_ACTIONS` actions.
    """
    start, end = _utc(start), _utc(end)
    if start >= end:
        raise InvalidRequestError.one(("body", "end"), "end must be after start")
    handle = client.get_schedule_handle(schedule_id)
    with _known(schedule_id):
        view = await _view(await handle.describe())
        actions = count_actions(
            cron=view.cron,
            interval_s=view.interval_s,
            time_zone=view.time_zone,
            start=start,
            end=end,
            cap=MAX_BACKFILL_ACTIONS + 1,
        )
        if actions > MAX_BACKFILL_ACTIONS:
            raise InvalidRequestError.one(
                ("body", "end"),
                f"from {start.isoformat()} to {end.isoformat()} the schedule acts more than"
                f" {MAX_BACKFILL_ACTIONS} times; backfill a shorter period",
            )
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=end, overlap=_overlap(overlap)))
    return actions


async def delete_schedule(client: Client, schedule_id: str) -> ScheduleView:
    """Delete the schedule (runs it started go on); what it was."""
    handle = client.get_schedule_handle(schedule_id)
    with _known(schedule_id):
        view = await _view(await handle.describe())
        await handle.delete()
    return view


def schedule_ui_url(settings: Settings, schedule_id: str) -> str:
    """A link that opens the schedule in the Temporal Web UI."""
    namespace = quote(settings.temporal_namespace, safe="")
    base = settings.effective_temporal_ui_url
    return f"{base}/namespaces/{namespace}/schedules/{quote(schedule_id, safe='')}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _overlap(name: str | None) -> ScheduleOverlapPolicy | None:
    if name is None:
        return None
    if name not in OVERLAP_POLICIES:
        raise InvalidRequestError.one(("body", "overlap"), f"unknown overlap policy {name!r}")
    return OVERLAP_POLICIES[name]


def _actions(results: Any) -> list[ScheduledAction]:
    actions = [
        ScheduledAction(
            run_id=getattr(result.action, "workflow_id", ""),
            scheduled_at=result.scheduled_at,
            started_at=result.started_at,
        )
        for result in results
    ]
    return actions[::-1]


def _options_of(memo: dict[str, Any], spec: ScheduleSpec) -> dict[str, Any]:
    """Kind, target and timing from the memo, or from Temporal's spec for schedules made elsewhere."""
    ours: dict[str, Any] = memo.get(MEMO_KEY) or {}
    interval = spec.intervals[0].every if spec.intervals else None
    return {
        "kind": ours.get("kind"),
        "target": ours.get("target") or {},
        "cron": ours.get("cron"),
        "interval_s": ours.get("interval_s") or (int(interval.total_seconds()) if interval else None),
        "time_zone": ours.get("time_zone") or spec.time_zone_name,
    }


def _owner(attributes: TypedSearchAttributes) -> dict[str, Any]:
    """The organisation and team a schedule belongs to, from its search attributes."""
    return {
        "org_id": attributes.get(ORG_KEY) or DEFAULT_ORG,
        "team_id": attributes.get(TEAM_KEY) or DEFAULT_TEAM,
    }


async def _view(description: ScheduleDescription) -> ScheduleView:
    schedule, info = description.schedule, description.info
    return ScheduleView(
        schedule_id=description.id,
        **_options_of(dict(await description.memo()), schedule.spec),
        paused=schedule.state.paused,
        note=schedule.state.note,
        next_action_times=list(info.next_action_times),
        recent_actions=_actions(info.recent_actions),
        overlap=_OVERLAP_NAMES.get(schedule.policy.overlap),
        pause_on_failure=schedule.policy.pause_on_failure,
        running=[getattr(action, "workflow_id", "") for action in info.running_actions],
        actions_taken=info.num_actions,
        created_at=info.created_at,
        updated_at=info.last_updated_at,
        **_owner(description.typed_search_attributes),
    )


async def _listed(entry: ScheduleListDescription) -> ScheduleView:
    listed, info = entry.schedule, entry.info
    return ScheduleView(
        schedule_id=entry.id,
        **_options_of(dict(await entry.memo()), listed.spec if listed else ScheduleSpec()),
        paused=listed.state.paused if listed else False,
        note=listed.state.note if listed else None,
        next_action_times=list(info.next_action_times) if info else [],
        recent_actions=_actions(info.recent_actions) if info else [],
        **_owner(entry.typed_search_attributes),
    )
