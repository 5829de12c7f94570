"""What a schedule can start: one target per kind of run, registered by the kind's module.

A target is a body model (what ``"target"`` holds in ``POST /api/v1/schedules``, with
``kind`` as its first field) and a ``build`` coroutine that turns a validated body, for a
team, into a :class:`ScheduledStart`: the workflow, its argument, the task queue and a summary with no
secret value (it goes into the schedule's memo). ``build`` may store things the runs need
(a spec, a secret); ``forget`` then removes them when the schedule is deleted, or when it
could not be created. For example::

    class BatchScheduleTarget(BaseModel):
        kind: Literal["batch"]
        job: BatchJobCreate

    async def build_batch(body: BatchScheduleTarget, request: Request, team: Membership) -> ScheduledStart:
        settings = get_settings(request)
        return ScheduledStart(kind="batch", workflow=BatchJobWorkflow.run, arg=..., task_queue=...,
                              summary={"processor": body.job.processor})

    register_schedule_target("batch", BatchScheduleTarget, build_batch)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, create_model

from crucible.core.auth import Membership
from crucible.core.schedules import ScheduledStart

__all__ = ["TARGETS", "ScheduleTarget", "ScheduledStart", "register_schedule_target", "validate_target"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ScheduleTarget:
    kind: str
    body_model: type[BaseModel]
    build: Callable[[Any, Request, Membership], Awaitable[ScheduledStart]]
    forget: Callable[[dict[str, Any], Request], Awaitable[None]] | None = None


#: Every kind of run a schedule can start, by kind.
TARGETS: dict[str, ScheduleTarget] = {}


def register_schedule_target(
    kind: str,
    body_model: type[M],
    build: Callable[[M, Request, Membership], Awaitable[ScheduledStart]],
    *,
    forget: Callable[[dict[str, Any], Request], Awaitable[None]] | None = None,
) -> None:
    """Let schedules start runs of ``kind``.

    Args:
        body_model: validates the request's ``target`` object (including its ``kind``);
            its errors come back as 422s under ``["body", "target", …]``.
        build: the run to start, from the validated body, the request (for ``app.state``) and
            the team the schedule belongs to (whatever it refers to must be that team's).
        forget: given the ``summary`` of the start ``build`` made, removes what ``build`` stored.
    """
    TARGETS[kind] = ScheduleTarget(kind, body_model, build, forget)
    _kind_model.cache_clear()


@cache
def _kind_model() -> type[BaseModel]:
    kind: Any = Literal[tuple(sorted(TARGETS)) or ("none",)]
    return create_model("ScheduleTargetKind", __config__=ConfigDict(extra="allow"), kind=(kind, ...))


def validate_target(value: Any) -> BaseModel:
    """``value`` validated by its kind's body model; a ValidationError locates every mistake."""
    kind = _kind_model().model_validate(value).kind  # type: ignore[attr-defined]
    return TARGETS[kind].body_model.model_validate(value)
