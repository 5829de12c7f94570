"""Who may touch which resource: the team checks every route goes through.

A route that names a resource in its path takes it through one of the rules here, as a
dependency. A rule answers 404 when the resource is not in one of the caller's teams (the
same answer as for an id that does not exist, so ids of other teams cannot be probed), and
403 when the caller's role there is too small. Rules run before the request's body is read,
so neither answer depends on the body.

Each rule also marks its route in the OpenAPI document, under ``x-crucible-access``: users
read there what a call needs, and the access-matrix test finds every route to check.
:func:`mark_access` refuses to build an app with a route that names a resource in its path
and checks no rule.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from crucible.api.auth_deps import PrincipalDep, bearer_scheme
from crucible.api.deps import PipelineStoreDep, RunServiceDep, TemporalDep
from crucible.api.starts import get_starter
from crucible.core import schedules
from crucible.core.auth import Membership, Role
from crucible.core.errors import ForbiddenError, InvalidRequestError, NotFoundError, RunNotFoundError
from crucible.core.pipelines.store import PipelineRow
from crucible.core.schedules import ScheduleView
from crucible.core.tables import Run

ACCESS_KEY = "x-crucible-access"

RunIdPath = Annotated[str, Path(description="The run id, e.g. `qa-3f2c…`.", max_length=200)]
PipelineIdPath = Annotated[
    str, Path(description="The pipeline's id, e.g. `pl-nightly-3f2c1a`.", max_length=100)
]
ScheduleIdPath = Annotated[str, Path(description="The schedule's id, e.g. `nightly-orders`.", max_length=200)]


class AccessRule:
    """A dependency that checks the caller's role in the team owning the route's resource."""

    resource: str

    def __init__(self, role: Role) -> None:
        self.role = role

    def doc(self) -> dict[str, Any]:
        return {"resource": self.resource, "role": self.role.name}


class RunAccess(AccessRule):
    """The run named by ``{run_id}``, when the caller acts with ``role`` in its team.

    ``kind`` limits the route to runs of one kind: another kind's run is a 404 too.
    """

    resource = "run"

    def __init__(self, role: Role, *, kind: str | None = None) -> None:
        super().__init__(role)
        self.kind = kind

    def doc(self) -> dict[str, Any]:
        return {**super().doc(), **({"kind": self.kind} if self.kind else {})}

    async def __call__(self, run_id: RunIdPath, runs: RunServiceDep, principal: PrincipalDep) -> Run:
        run = await runs.get(run_id)
        if self.kind is not None and run.kind != self.kind:
            raise RunNotFoundError(run_id)
        principal.require(run.team_id, self.role, what="run", ident=run_id)
        return run


class PipelineAccess(AccessRule):
    resource = "pipeline"

    async def __call__(
        self, pipeline_id: PipelineIdPath, store: PipelineStoreDep, principal: PrincipalDep
    ) -> PipelineRow:
        row = await store.get(pipeline_id)
        if row is None:
            raise NotFoundError("pipeline", pipeline_id)
        principal.require(row.team_id, self.role, what="pipeline", ident=pipeline_id)
        return row


class ScheduleAccess(AccessRule):
    resource = "schedule"

    async def __call__(
        self, schedule_id: ScheduleIdPath, temporal: TemporalDep, principal: PrincipalDep
    ) -> ScheduleView:
        view = await schedules.describe_schedule(temporal, schedule_id)
        principal.require(view.team_id, self.role, what="schedule", ident=schedule_id)
        return view


class TeamAccess(AccessRule):
    """The team a new run, pipeline or schedule goes to: ``?team_id=``, or the caller's only team.

    A caller who acts with ``role`` in several teams says which; one who acts with it in
    none gets 403.
    """

    resource = "team"

    async def __call__(
        self,
        principal: PrincipalDep,
        team_id: Annotated[
            str | None,
            Query(
                max_length=100,
                description="The team it belongs to. Needed only when you are in several teams.",
            ),
        ] = None,
    ) -> Membership:
        if team_id is not None:
            principal.require(team_id, self.role)
            return principal.teams[team_id]
        teams = principal.team_ids(at_least=self.role)
        if len(teams) == 1:
            return principal.teams[teams[0]]
        if not teams:
            raise ForbiddenError(f"this needs the {self.role.name} role in a team; you have it in none")
        raise InvalidRequestError.one(
            ("query", "team_id"),
            f"you are a {self.role.name} in several teams ({', '.join(teams)}); say which",
        )


ViewRun = Annotated[Run, Depends(RunAccess(Role.viewer))]
RunnerRun = Annotated[Run, Depends(RunAccess(Role.runner))]
ViewPipeline = Annotated[PipelineRow, Depends(PipelineAccess(Role.viewer))]
RunnerPipeline = Annotated[PipelineRow, Depends(PipelineAccess(Role.runner))]
ViewSchedule = Annotated[ScheduleView, Depends(ScheduleAccess(Role.viewer))]
RunnerSchedule = Annotated[ScheduleView, Depends(ScheduleAccess(Role.runner))]
#: The team a new resource belongs to; the caller must be a runner there.
NewInTeam = Annotated[Membership, Depends(TeamAccess(Role.runner))]

#: Routes anyone may call: health, metrics (for Prometheus) and signing in.
PUBLIC = frozenset({"/healthz", "/metrics", "/auth/login", "/auth/refresh"})


#: What a route may answer besides its own responses, by what it checks.
SIGNED_IN = {
    401: {"description": "Not signed in, or the credential is not valid (see `WWW-Authenticate`)"},
    403: {"description": "A token whose scope does not cover this"},
}
CHECKED = {
    403: {"description": "Your role in the team is too small for this"},
    404: {"description": "No such resource in your teams (the same answer as for an id that does not exist)"},
}
QUOTA = {429: {"description": "The team is at one of its run quotas; `Retry-After` says when to try again"}}


def _calls(dependant: Dependant) -> list[Any]:
    found = []
    for sub in dependant.dependencies:
        found.append(sub.call)
        found.extend(_calls(sub))
    return found


def mark_access(router: APIRouter) -> None:
    """Put each route's access rule into the OpenAPI document; refuse a route without one.

    Call it on each router before the app includes it. A route is marked with its
    :class:`AccessRule`, or ``{"resource": "caller"}`` when it needs only a signed-in caller
    (lists, which show the caller's teams' rows only). One that names something in its path
    must check a rule, or say what it does instead with its own ``x-crucible-access`` (API
    tokens, which belong to their user).
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = dict(route.openapi_extra or {})
        calls = _calls(route.dependant)
        rules = [call for call in calls if isinstance(call, AccessRule)]
        if ACCESS_KEY not in extra:
            if rules:
                extra[ACCESS_KEY] = rules[0].doc()
            elif bearer_scheme in calls:
                if route.dependant.path_params:
                    raise RuntimeError(f"{route.path} names a resource but checks no access rule")
                extra[ACCESS_KEY] = {"resource": "caller"}
            elif route.path_format not in PUBLIC:
                raise RuntimeError(f"{route.path} needs no sign-in; add it to PUBLIC if it should not")
        route.openapi_extra = extra or None
        if bearer_scheme in calls:
            documented = {
                **SIGNED_IN,
                **(CHECKED if rules else {}),
                **(QUOTA if get_starter in calls else {}),
            }
            for code, response in documented.items():
                route.responses.setdefault(code, response)


__all__ = [
    "ACCESS_KEY",
    "NewInTeam",
    "PipelineIdPath",
    "RunIdPath",
    "RunnerPipeline",
    "RunnerRun",
    "RunnerSchedule",
    "ScheduleIdPath",
    "ViewPipeline",
    "ViewRun",
    "ViewSchedule",
    "mark_access",
]
