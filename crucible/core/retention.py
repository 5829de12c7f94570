"""Retention: what the retention workflow and its activity exchange.

A built-in Temporal Schedule (:func:`crucible.core.schedules.ensure_retention_schedule`)
starts the retention workflow, which deletes closed runs older than a number of days
together with everything stored for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: The retention workflow's type name, so the schedule can name it without importing workflow code.
RETENTION_WORKFLOW = "RetentionWorkflow"
#: Runs deleted per transaction: a large prune never holds its locks for long.
PRUNE_BATCH = 1000


@dataclass
class RetentionInput:
    """Delete runs that closed more than ``older_than_days`` days ago (0: delete nothing)."""

    older_than_days: int
    batch_size: int = PRUNE_BATCH


@dataclass
class PruneRunsInput:
    closed_before: datetime
    batch_size: int = PRUNE_BATCH


@dataclass
class PruneRunsResult:
    """Rows deleted, per table."""

    runs: int = 0
    run_events: int = 0
    qa_runs: int = 0
    qa_results: int = 0
    secrets: int = 0
    #: Batch job folders (chunk outputs of jobs never completed) removed from disk.
    batch_folders: int = 0
    #: Chaos experiments' definitions, SLO measurements and results.
    chaos_rows: int = 0

    def add(self, other: PruneRunsResult) -> None:
        self.runs += other.runs
        self.run_events += other.run_events
        self.qa_runs += other.qa_runs
        self.chaos_rows += other.chaos_rows
        self.qa_results += other.qa_results
        self.secrets += other.secrets
        self.batch_folders += other.batch_folders
