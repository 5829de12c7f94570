"""Who is calling, and what they may do: roles, memberships, scopes and the principal."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from crucible.core.errors import CrucibleError, ForbiddenError, NotFoundError


class AuthError(CrucibleError):
    """The caller could not be authenticated (401). The message is safe to show."""


class AuthConfigError(CrucibleError):
    """The auth settings cannot be used (a missing or short secret, a bad key list)."""


class Role(enum.IntEnum):
    """A member's role in a team; each one can do what the ones below it can."""

    viewer = 1
    runner = 2
    admin = 3


#: What an API token may be limited to. ``read`` acts as a viewer at most, ``run`` as a
#: runner, ``admin`` as an admin; the member's own role still caps it.
Scope = Literal["read", "run", "admin"]
SCOPE_CEILING: dict[str, Role] = {"read": Role.viewer, "run": Role.runner, "admin": Role.admin}
ALL_SCOPES: tuple[Scope, ...] = ("read", "run", "admin")


@dataclass(frozen=True)
class Membership:
    org_id: str
    team_id: str
    role: Role


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, their memberships and what the credential allows.

    ``via`` says how they authenticated: ``"access"`` (a login's JWT, every scope) or
    ``"api_token"`` (scoped, and limited to one team when ``token_team_id`` is set).
    """

    user_id: str
    email: str
    memberships: tuple[Membership, ...]
    scopes: frozenset[str]
    via: Literal["access", "api_token"]
    token_id: str | None = None
    token_team_id: str | None = None
    teams: dict[str, Membership] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        visible = {
            m.team_id: m
            for m in self.memberships
            if self.token_team_id is None or m.team_id == self.token_team_id
        }
        object.__setattr__(self, "teams", visible)

    @property
    def ceiling(self) -> Role | None:
        """The highest role the credential's scopes allow, or None when it has none."""
        roles = [SCOPE_CEILING[s] for s in self.scopes if s in SCOPE_CEILING]
        return max(roles) if roles else None

    def role_in(self, team_id: str) -> Role | None:
        """The role this caller acts with in ``team_id``, or None when the team is not theirs."""
        membership = self.teams.get(team_id)
        ceiling = self.ceiling
        if membership is None or ceiling is None:
            return None
        return min(membership.role, ceiling)

    def team_ids(self, *, at_least: Role = Role.viewer) -> list[str]:
        """The teams where this caller acts with ``at_least`` that role (for list filters)."""
        return sorted(t for t in self.teams if (role := self.role_in(t)) is not None and role >= at_least)

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    def require(self, team_id: str, role: Role, *, what: str = "team", ident: str | None = None) -> Role:
        """Check that this caller acts with at least ``role`` in ``team_id``.

        Raises:
            NotFoundError: the team is not the caller's (404, so ids of other teams cannot be probed);
                ``what`` and ``ident`` name the resource in the message.
            ForbiddenError: the caller's role (or token scope) there is too small (403).
        """
        actual = self.role_in(team_id)
        if actual is None:
            raise NotFoundError(what, ident if ident is not None else team_id)
        if actual < role:
            raise ForbiddenError(
                f"this needs the {role.name} role in team {team_id!r}; you act as {actual.name}"
            )
        return actual
