"""The admission of a run a Temporal Schedule started, against its team's quotas (PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.errors import QuotaExceededError
from crucible.core.quotas import QuotaStore

#: The error type a scheduled run over its team's quota fails with.
QUOTA_EXCEEDED = "QuotaExceeded"


@dataclass(frozen=True)
class AdmitScheduledRun:
    run_id: str
    team_id: str
    schedule_id: str


class QuotaActivities:
    def __init__(self, quotas: QuotaStore) -> None:
        self.quotas = quotas

    @activity.defn
    async def admit_scheduled_run(self, run: AdmitScheduledRun) -> None:
        """Admit ``run`` against its team's quotas, once however often this is retried.

        Raises:
            ApplicationError: of type ``QuotaExceeded``, not retried: the team is at a quota.
        """
        try:
            await self.quotas.admit_started(run.run_id, run.team_id)
        except QuotaExceededError as exc:
            raise ApplicationError(
                f"schedule {run.schedule_id!r} started this run, but {exc}",
                {"retry_after_s": exc.retry_after_s},
                type=QUOTA_EXCEEDED,
                non_retryable=True,
            ) from None
