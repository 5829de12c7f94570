"""`crucible accounts`: an operator makes an organisation, a team, a user who can sign in, and
gives the team quotas, all in the database the settings name."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from crucible.cli import app
from crucible.core.auth import AccountStore
from crucible.core.config import Settings
from crucible.core.quotas import Limits, QuotaStore
from crucible.core.store import RunStore
from tests.support.bodies import QUICK_QA
from tests.support.servers import ApiServer

pytestmark = pytest.mark.timeout(60)
PASSWORD = "a long enough password"


async def test_an_operator_sets_up_a_team_whose_member_signs_in_and_meets_its_quota(
    store: RunStore, settings: Settings, tmp_path: Path, api_server: ApiServer
) -> None:
    suffix = uuid.uuid4().hex[:8]
    org, team, email = f"acme-{suffix}", f"payments-{suffix}", f"ops-{suffix}@acme.example"
    env = {"DATABASE_URL": settings.effective_database_url, "CRUCIBLE_HOME": str(tmp_path)}

    async def crucible(*args: str, given: str = "") -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, ["accounts", *args], input=given, env=env)

    assert (await crucible("team", team, "--org", org)).exit_code == 2  # no such organisation yet
    assert (await crucible("org", org, "--name", "Acme")).exit_code == 0
    assert (await crucible("team", team, "--org", org)).exit_code == 0
    short = await crucible("user", email, "--password-stdin", given="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    created = await crucible("user", email, "--password-stdin", given=PASSWORD + "\n")
    assert created.exit_code == 0 and f"user {email} created" in created.output
    wrong_role = await crucible("member", email, team, "--role", "owner")
    assert wrong_role.exit_code == 2 and "viewer, runner, admin" in wrong_role.output
    made = await crucible("member", email, team, "--role", "runner")
    assert made.exit_code == 0 and f"{email} is runner in {team}" in made.output
    limited = await crucible("quota", team, "--concurrent", "none", "--per-day", "1")
    assert limited.exit_code == 0, limited.output
    assert await QuotaStore(store.engine, Limits(None, None)).limits_of(team) == Limits(None, 1)

    # The user signs in, starts the team's one run of the day, and is held to the quota.
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as anonymous:
        await _signs_in_and_meets_the_quota(anonymous, email, team)

    removed = await crucible("member", email, team, "--remove")
    assert removed.exit_code == 0 and f"{email} is out of {team}" in removed.output
    user = await AccountStore(store.engine).user_by_email(email)
    assert user is not None and await AccountStore(store.engine).memberships(user.user_id) == ()


async def _signs_in_and_meets_the_quota(anonymous: httpx.AsyncClient, email: str, team: str) -> None:
    login = await anonymous.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    first = await anonymous.post("/api/v1/qa-runs", json=QUICK_QA, headers=bearer)
    assert first.status_code == 202, first.text
    run = (await anonymous.get(f"/api/v1/runs/{first.json()['run_id']}", headers=bearer)).json()
    assert run["team_id"] == team
    assert (await anonymous.post("/api/v1/qa-runs", json=QUICK_QA, headers=bearer)).status_code == 429
