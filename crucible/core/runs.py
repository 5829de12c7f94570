"""Runs: the ids, kinds and status vocabulary every kind of run shares.

A run's id is its Temporal workflow id, ``<kind>-<32 hex digits>``, so the same id
works in the API, the CLI and the Temporal Web UI. A run that a Temporal Schedule
started has the id ``<kind>-<schedule id>-<action time>`` instead: the schedule's
action id with the time Temporal appends (``pipeline-nightly-orders-2026-01-01T03:17:00Z``).
This module is imported by workflow code, so it uses the standard library only. Like
:mod:`crucible.core.events`, it keeps its annotations evaluated, for Temporal's converter.
"""

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

#: The kinds of run Crucible knows, each also the prefix of its run ids.
RUN_KINDS: tuple[str, ...] = ("qa", "batch", "pipeline", "saga", "sagatest", "chaos", "flow", "test")

DEFAULT_ORG = "default"
DEFAULT_TEAM = "default"

_RUN_ID = re.compile(r"^(?P<kind>[a-z][a-z0-9]*)-[0-9a-f]{32}$")
_SCHEDULED_RUN_ID = re.compile(
    r"(?P<kind>[a-z][a-z0-9]*)-(?P<schedule>[a-z0-9]+(?:-[a-z0-9]+)*)-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
)
#: Longer ids are not run ids (a schedule id has at most 60 characters).
_MAX_RUN_ID = 120


class RunStatus(StrEnum):
    """Where a run stands in Temporal's view."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_closed(self) -> bool:
        return self is not RunStatus.RUNNING


def new_run_id(kind: str, *, unique: uuid.UUID | None = None) -> str:
    """Build the id of a new run of ``kind``.

    Workflow code passes ``unique=workflow.uuid4()`` so the id is replay-safe.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]*", kind):
        raise ValueError(f"invalid run kind {kind!r}")
    return f"{kind}-{(unique or uuid.uuid4()).hex}"


def _scheduled(run_id: str) -> re.Match[str] | None:
    match = _SCHEDULED_RUN_ID.fullmatch(run_id) if len(run_id) <= _MAX_RUN_ID else None
    return match if match and match["kind"] in RUN_KINDS else None


def kind_of(run_id: str) -> str | None:
    """The kind encoded in a run id, or None when it is not a run id."""
    match = _RUN_ID.match(run_id) or _scheduled(run_id)
    return match["kind"] if match else None


def schedule_of(run_id: str) -> str | None:
    """The id of the schedule that started the run, or None when no schedule did."""
    match = _scheduled(run_id)
    return match["schedule"] if match else None


@dataclass
class RunSnapshot:
    """What the run's row says about it, written with each batch of its events."""

    run_id: str
    kind: str
    org_id: str = DEFAULT_ORG
    team_id: str = DEFAULT_TEAM
    status: RunStatus = RunStatus.RUNNING
    state: str | None = None
    verdict: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    closed_at: datetime | None = None
