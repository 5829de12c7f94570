"""Crucible's exceptions. The API maps each to an HTTP status in one place.

CrucibleError
├── RunNotFoundError        no run with that id (404)
├── RunClosedError          the run has already finished (409)
├── ScheduleNotFoundError   no schedule with that id (404)
├── ScheduleExistsError     a schedule with that id exists already (409)
├── NotFoundError           no pipeline (or other resource, a run's signal) with that id (404)
├── ConflictError           the request does not fit where its subject stands (409)
├── ForbiddenError          the caller may not do this (403)
├── TooManyRequestsError    try again later, in so many seconds (429)
│   └── QuotaExceededError  the team is at a run quota
├── InvalidRequestError     a request field is wrong; names the field (422)
├── InvalidCursorError      a list cursor this API did not hand out (crucible.core.store)
├── DependencyUnavailableError   Temporal, PostgreSQL or Kafka does not answer (503)
└── StackError              a part of `crucible dev` could not start (crucible.stack.services)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self


class CrucibleError(Exception):
    """Root of Crucible's exceptions."""


class RunNotFoundError(CrucibleError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found")
        self.run_id = run_id


class RunClosedError(CrucibleError):
    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id!r} has already finished with status {status}")
        self.run_id = run_id
        self.status = status


class ScheduleNotFoundError(CrucibleError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} not found")
        self.schedule_id = schedule_id


class ScheduleExistsError(CrucibleError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"a schedule with id {schedule_id!r} exists already; choose another name")
        self.schedule_id = schedule_id


class NotFoundError(CrucibleError):
    """Something other than a run (a pipeline, say) that does not exist (404)."""

    def __init__(self, what: str, ident: str, *, hint: str = "") -> None:
        super().__init__(f"{what} {ident!r} not found" + (f"; {hint}" if hint else ""))


class ConflictError(CrucibleError):
    """The request does not fit where its subject stands: resuming a running job, say (409)."""


class ForbiddenError(CrucibleError):
    """The caller may not do this, whatever the request says: approve their own experiment, say (403)."""


class TooManyRequestsError(CrucibleError):
    """Not now (429); ``retry_after_s`` says when to ask again."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExceededError(TooManyRequestsError):
    """The team is at one of its run quotas (429)."""


@dataclass(frozen=True)
class FieldError:
    """One wrong field: where it is (FastAPI's ``loc``), what is wrong, a type tag."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class InvalidRequestError(CrucibleError):
    """A request that parses but asks for something impossible; lists every wrong field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, loc: tuple[str | int, ...], msg: str, *, type: str = "value_error") -> Self:
        return cls([FieldError(loc, msg, type)])


class DependencyUnavailableError(CrucibleError):
    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component} is unavailable: {reason}")
        self.component = component
        self.reason = reason
