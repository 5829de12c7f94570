"""A schedule's options, checked before Temporal sees them, and its readable id."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from temporalio.client import ScheduleIntervalSpec, ScheduleOverlapPolicy, ScheduleSpec

from crucible.core.errors import FieldError, InvalidRequestError

#: Overlap policies by the names the API takes.
OVERLAP_POLICIES: dict[str, ScheduleOverlapPolicy] = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
MAX_SCHEDULE_ID = 60
#: Ids with this prefix belong to Crucible's own schedules.
RESERVED_PREFIX = "crucible-"
CRON_SHORTHANDS = ("@yearly", "@monthly", "@weekly", "@daily", "@hourly")
_CRON_NAMES = re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat")
_CRON_FIELD = re.compile(r"[0-9*,/-]+")


def schedule_id_for(name: str) -> str:
    """The readable id a schedule named ``name`` gets: ``"Nightly orders"`` → ``nightly-orders``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:MAX_SCHEDULE_ID].rstrip("-")
    if not slug:
        raise ValueError(f"{name!r} has no letter or digit to make the schedule's id from")
    if slug.startswith(RESERVED_PREFIX):
        raise ValueError(f"ids starting with {RESERVED_PREFIX!r} are kept for Crucible's own schedules")
    return slug


def check_cron(expression: str) -> str:
    """``expression`` in the form Temporal takes, or ValueError saying what is wrong with it.

    Five fields (minute hour day-of-month month day-of-week) or a shorthand like ``@daily``.
    Temporal reads a few characters other crons accept differently (``#`` starts a comment),
    or not at all (``L``, ``W``, ``?``, ``H``), so they are refused here.
    """
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text in CRON_SHORTHANDS:
            return text
        raise ValueError(
            f"{expression!r} is not a cron expression: the shorthands are {', '.join(CRON_SHORTHANDS)}"
            " (for a fixed interval, give interval_s)"
        )
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a cron expression: it has {len(fields)} fields, and a cron expression"
            " has 5 (minute hour day-of-month month day-of-week)"
        )
    for name, value in zip(("minute", "hour", "day-of-month", "month", "day-of-week"), fields, strict=True):
        if not _CRON_FIELD.fullmatch(_CRON_NAMES.sub("0", value.lower())):
            raise ValueError(
                f"{expression!r} is not a cron expression Temporal takes: its {name} field {value!r} may hold"
                " only numbers, names (JAN, MON), *, ranges (a-b), lists (a,b) and steps (/n)"
            )
    try:
        croniter(text).get_next(datetime)
    except CroniterBadCronError as exc:
        raise ValueError(f"{expression!r} is not a valid cron expression: {exc}") from None
    except CroniterBadDateError:
        raise ValueError(f"{expression!r} never matches a date") from None
    return text


def check_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone, or ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone, like UTC or Europe/Paris") from None
    return name


@dataclass(frozen=True)
class ScheduleOptions:
    """When a schedule acts, and what it does when runs overlap or fail.

    Exactly one of ``cron`` and ``interval_s`` is given. ``time_zone`` is the one cron
    times are read in. ``pause_on_failure`` pauses the schedule when a run it started
    fails (after its retries). Invalid options raise :class:`InvalidRequestError`.
    """

    cron: str | None = None
    interval_s: int | None = None
    time_zone: str = "UTC"
    overlap: str = "skip"
    pause_on_failure: bool = False
    paused: bool = False
    note: str | None = None

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        for name, check in (("cron", check_cron), ("time_zone", check_time_zone)):
            value = getattr(self, name)
            try:
                if value is not None:
                    object.__setattr__(self, name, check(value))
            except ValueError as exc:
                errors.append(FieldError(("body", name), str(exc)))
        if (self.cron is None) == (self.interval_s is None):
            errors.append(FieldError(("body",), "give either cron or interval_s, not both and not neither"))
        if self.interval_s is not None and self.interval_s < 1:
            errors.append(FieldError(("body", "interval_s"), "an interval is at least 1 second"))
        if self.overlap not in OVERLAP_POLICIES:
            message = f"unknown overlap policy {self.overlap!r}; one of {', '.join(OVERLAP_POLICIES)}"
            errors.append(FieldError(("body", "overlap"), message))
        if errors:
            raise InvalidRequestError(errors)

    def spec(self) -> ScheduleSpec:
        if self.cron is not None:
            return ScheduleSpec(cron_expressions=[self.cron], time_zone_name=self.time_zone)
        assert self.interval_s is not None
        return ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=self.interval_s))],
            time_zone_name=self.time_zone,
        )


def count_actions(
    *,
    cron: str | None,
    interval_s: int | None,
    time_zone: str | None,
    start: datetime,
    end: datetime,
    cap: int,
) -> int:
    """How many times (at most ``cap``) a schedule with this timing acts from ``start`` to ``end``."""
    if interval_s:  # Temporal's intervals count from the Unix epoch
        first = math.ceil(start.timestamp() / interval_s)
        return max(0, min(cap, math.floor(end.timestamp() / interval_s) - first + 1))
    if cron is None:
        return 0
    times = croniter(cron, start.astimezone(ZoneInfo(time_zone or "UTC")))
    count = 0
    while count < cap and times.get_next(datetime) <= end:
        count += 1
    return count
