"""The built-in schedule that prunes old runs: ``crucible-retention``."""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from crucible.core.retention import RETENTION_WORKFLOW, RetentionInput
from crucible.core.schedules.options import check_cron
from crucible.core.schedules.temporal import MEMO_KEY

RETENTION_SCHEDULE_ID = "crucible-retention"


async def ensure_retention_schedule(
    client: Client, *, task_queue: str, days: int, cron: str
) -> ScheduleHandle | None:
    """Create or update the schedule that deletes runs closed more than ``days`` days ago.

    ``days`` 0 deletes the schedule instead. Every process may call this at startup: a
    second call changes nothing, and a pause an operator set stays.
    """
    handle = client.get_schedule_handle(RETENTION_SCHEDULE_ID)
    if days <= 0:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        return None
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RETENTION_WORKFLOW,
            RetentionInput(older_than_days=days),
            id=RETENTION_SCHEDULE_ID,
            task_queue=task_queue,
            static_summary=f"delete runs closed more than {days} days ago",
        ),
        spec=ScheduleSpec(cron_expressions=[check_cron(cron)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    # The memo cannot be updated, so it holds nothing that a setting changes.
    memo = {MEMO_KEY: {"kind": "retention", "target": {"kind": "retention"}}}
    try:
        return await client.create_schedule(RETENTION_SCHEDULE_ID, schedule, memo=memo)
    except ScheduleAlreadyRunningError:
        pass

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule.state = current.description.schedule.state
        return ScheduleUpdate(schedule=schedule)

    await handle.update(update)
    return handle
