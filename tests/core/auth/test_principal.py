"""What a principal may do in a team: the member's role, capped by the credential's scopes."""

from __future__ import annotations

import pytest

from crucible.core.auth import ALL_SCOPES, Membership, Principal, Role
from crucible.core.errors import ForbiddenError, NotFoundError

TEAMS = (Membership("acme", "qa", Role.viewer), Membership("acme", "ops", Role.admin))


def principal(scopes: tuple[str, ...] = ALL_SCOPES, *, team: str | None = None) -> Principal:
    via = "access" if team is None and scopes == ALL_SCOPES else "api_token"
    return Principal("u1", "u@example.com", TEAMS, frozenset(scopes), via, token_team_id=team)  # type: ignore[arg-type]


def test_a_login_acts_with_the_member_s_role_in_each_team() -> None:
    p = principal()
    assert (p.role_in("qa"), p.role_in("ops"), p.role_in("other")) == (Role.viewer, Role.admin, None)
    assert p.team_ids() == ["ops", "qa"]
    assert p.team_ids(at_least=Role.runner) == ["ops"]


def test_scopes_cap_the_role_and_a_team_bound_token_sees_its_team_only() -> None:
    assert principal(("read",)).role_in("ops") == Role.viewer
    assert principal(("read", "run")).role_in("ops") == Role.runner
    assert principal(("admin",)).role_in("qa") == Role.viewer
    bound = principal(("admin",), team="ops")
    assert (bound.role_in("ops"), bound.role_in("qa")) == (Role.admin, None)
    assert principal(()).role_in("ops") is None


def test_require_hides_other_teams_and_refuses_small_roles() -> None:
    p = principal()
    assert p.require("ops", Role.admin) == Role.admin
    with pytest.raises(NotFoundError, match="run 'run-1' not found"):
        p.require("other", Role.viewer, what="run", ident="run-1")
    with pytest.raises(ForbiddenError, match="runner"):
        p.require("qa", Role.runner)
