"""Temporal Schedules that start Crucible runs, and the built-in retention schedule.

Crucible schedules nothing itself: a schedule is a Temporal Schedule whose action starts
one kind of run. :mod:`.options` checks a schedule's options before Temporal sees them,
:mod:`.temporal` creates and reads schedules, :mod:`.retention` keeps the schedule that
prunes old runs.
"""

from crucible.core.schedules.options import (
    CRON_SHORTHANDS,
    MAX_SCHEDULE_ID,
    OVERLAP_POLICIES,
    ScheduleOptions,
    check_cron,
    check_time_zone,
    count_actions,
    schedule_id_for,
)
from crucible.core.schedules.retention import RETENTION_SCHEDULE_ID, ensure_retention_schedule
from crucible.core.schedules.temporal import (
    MAX_BACKFILL_ACTIONS,
    MEMO_KEY,
    ScheduledAction,
    ScheduledStart,
    SchedulePage,
    ScheduleView,
    backfill_schedule,
    create_schedule,
    delete_schedule,
    describe_schedule,
    list_schedules,
    pause_schedule,
    schedule_ui_url,
    trigger_schedule,
    unpause_schedule,
)

__all__ = [
    "CRON_SHORTHANDS",
    "MAX_BACKFILL_ACTIONS",
    "MAX_SCHEDULE_ID",
    "MEMO_KEY",
    "OVERLAP_POLICIES",
    "RETENTION_SCHEDULE_ID",
    "ScheduleOptions",
    "SchedulePage",
    "ScheduleView",
    "ScheduledAction",
    "ScheduledStart",
    "backfill_schedule",
    "check_cron",
    "check_time_zone",
    "count_actions",
    "create_schedule",
    "delete_schedule",
    "describe_schedule",
    "ensure_retention_schedule",
    "list_schedules",
    "pause_schedule",
    "schedule_id_for",
    "schedule_ui_url",
    "trigger_schedule",
    "unpause_schedule",
]
