"""Team isolation, proved route by route: every id-bearing operation of the OpenAPI document.

Two organisations with two teams each, and in every team a viewer, a runner and an admin.
Team A1 owns one of each resource. Every operation the API's own OpenAPI document marks
with ``x-crucible-access`` is called by all twelve users:

* a user of any other team (same organisation or not) gets 404, as for an id that does
  not exist, whatever the body;
* a member of A1 whose role is below the operation's gets 403;
* a member with the role gets past the check: neither 401, 403 nor 404.

A new operation is in the matrix the moment it is in the document; one whose resource has
no fixture here fails the test by name. Every list answers each user with their teams' rows
only. The runs are closed before the matrix runs, so what the calls do stops at the check
or at "the run has finished".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crucible.core.auth import ALL_SCOPES, AccountStore, Role, hash_password
from crucible.core.store import RunStore
from tests.support.bodies import QUICK_QA, WAITING_EXPERIMENT
from tests.support.qa import wait_closed
from tests.support.servers import ApiServer

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(240)]

ACCESS = "x-crucible-access"
ROLES = (Role.viewer, Role.runner, Role.admin)
PASSWORD_HASH = hash_password("matrix password")


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str
    org_id: str
    team_id: str
    role: Role
    headers: dict[str, str]
    token_id: str

    def __str__(self) -> str:
        return f"{self.role.name} of {self.team_id}"


@dataclass(frozen=True)
class World:
    members: list[Member]
    owner_team: str
    #: The id to put in the path, by (resource, kind); kind None is "any run".
    ids: dict[tuple[str, str | None], str]

    def of(self, team_id: str) -> list[Member]:
        return [m for m in self.members if m.team_id == team_id]

    def admin(self, team_id: str) -> Member:
        return next(m for m in self.of(team_id) if m.role == Role.admin)


async def _member(accounts: AccountStore, org_id: str, team_id: str, role: Role) -> Member:
    now = datetime.now(UTC)
    user = await accounts.create_user(
        f"{role.name}-{uuid.uuid4().hex[:8]}@{team_id}.example",
        password_hash=PASSWORD_HASH,
        now=now,
    )
    await accounts.set_membership(user.user_id, team_id, role, now=now)
    row, token = await accounts.create_api_token(
        user.user_id, name="matrix", scopes=list(ALL_SCOPES), team_id=None, expires_at=None, now=now
    )
    return Member(
        user.user_id, user.email, org_id, team_id, role, {"Authorization": f"Bearer {token}"}, row.token_id
    )


async def _created(response: httpx.Response, key: str) -> str:
    assert response.status_code in (201, 202), response.text
    return str(response.json()[key])


@pytest.fixture
async def world(
    store: RunStore, api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    accounts = AccountStore(store.engine)
    now = datetime.now(UTC)
    suffix = uuid.uuid4().hex[:6]
    members = []
    for org in ("a", "b"):
        org_id = f"org-{org}-{suffix}"
        await accounts.ensure_org(org_id, name=f"Org {org}", now=now)
        for n in (1, 2):
            team_id = f"team-{org}{n}-{suffix}"
            await accounts.ensure_team(team_id, org_id=org_id, name=f"Team {org}{n}", now=now)
            members += [await _member(accounts, org_id, team_id, role) for role in ROLES]
    owner_team = members[0].team_id
    owner = next(m for m in members if m.team_id == owner_team and m.role == Role.admin)
    # A token of the owner's to revoke, other than the one it signs in with.
    spare, _ = await accounts.create_api_token(
        owner.user_id, name="spare", scopes=["read"], team_id=None, expires_at=None, now=now
    )
    folder: Path = tmp_path_factory.mktemp("matrix")
    rows = folder / "rows.jsonl"
    rows.write_text('{"id": 1}\n')
    schedule_name = f"matrix-{suffix}"
    async with httpx.AsyncClient(base_url=api_server.url, headers=owner.headers, timeout=30) as api:
        qa = await _created(await api.post("/api/v1/qa-runs", json=QUICK_QA), "run_id")
        batch = await _created(
            await api.post(
                "/api/v1/batch-jobs",
                json={
                    "input": str(rows),
                    "processor": "anomaly-detection",
                    "output": str(folder / "out.jsonl"),
                },
            ),
            "run_id",
        )
        chaos = await _created(await api.post("/api/v1/chaos-experiments", json=WAITING_EXPERIMENT), "run_id")
        pipeline = await _created(
            await api.post(
                "/api/v1/pipelines",
                json={
                    "name": "matrix",
                    "steps": [
                        {
                            "type": "batch",
                            "job": {
                                "input": str(rows),
                                "processor": "anomaly-detection",
                                "output": str(folder / "p.jsonl"),
                            },
                        }
                    ],
                },
            ),
            "pipeline_id",
        )
        schedule = await _created(
            await api.post(
                "/api/v1/schedules",
                json={
                    "name": schedule_name,
                    "cron": "0 0 1 1 *",
                    "paused": True,
                    "target": {"kind": "pipeline", "pipeline_id": pipeline},
                },
            ),
            "schedule_id",
        )
        # Closed runs: a call that gets past the check finds nothing left to do.
        assert (await api.post(f"/api/v1/runs/{chaos}/cancel")).status_code == 202
        for run_id in (qa, batch, chaos):
            await wait_closed(api, run_id)
        world = World(
            members,
            owner_team,
            {
                ("run", None): qa,
                ("run", "batch"): batch,
                ("run", "chaos"): chaos,
                ("run", "qa"): qa,
                ("pipeline", None): pipeline,
                ("schedule", None): schedule,
                ("api_token", None): spare.token_id,
                ("team", None): owner_team,
            },
        )
        yield world
        await api.delete(f"/api/v1/schedules/{schedule}")


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of the document, deletions last (they end their resource)."""
    found = [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    return sorted(found, key=lambda item: (item[0] == "DELETE", item[1], item[0]))


def _url(path: str, access: dict[str, Any], world: World) -> tuple[str, dict[str, str]]:
    """The operation's URL with A1's resource in it, and its query."""
    key = (access["resource"], access.get("kind"))
    assert key in world.ids, f"no {key} resource to call {path} with: add one to the world fixture"
    ident = world.ids[key]
    if access["resource"] == "team":
        return path, {"team_id": ident}
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        path = path.replace(f"{{{name}}}", ident if name.endswith("_id") else "matrix_probe")
    return path, {}


def _past_the_run(answer: httpx.Response) -> bool:
    """A 404 for a part of the run (a signal its kind lacks), not for the run: the caller saw
    the run, and its kind is named."""
    return answer.status_code == 404 and answer.json()["detail"].startswith(
        "signal 'matrix_probe' not found;"
    )


async def test_every_id_bearing_operation_hides_other_teams_and_checks_the_role(
    api_server: ApiServer, world: World
) -> None:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
        schema = (await http.get("/openapi.json")).json()
        checked: list[str] = []
        for method, template, op in operations(schema):
            access = op.get(ACCESS)
            if access is None or access["resource"] == "caller":
                continue
            path, query = _url(template, access, world)
            needed = Role[access["role"]] if "role" in access else None
            owners = world.of(world.owner_team)
            outsiders = [m for m in world.members if m.team_id != world.owner_team]
            if needed is None:  # a user's own resource (an API token): everyone else is an outsider
                owner = world.admin(world.owner_team)
                outsiders += [m for m in owners if m is not owner]
                allowed, refused = [owner], []
            else:
                allowed = [m for m in owners if m.role >= needed]
                refused = [m for m in owners if m.role < needed]
            if method == "DELETE":
                allowed = allowed[:1]  # the first one deletes it
            for member in outsiders:
                answer = await http.request(method, path, params=query, headers=member.headers, json={})
                hidden = answer.status_code == 404 and not _past_the_run(answer)
                assert hidden, f"{method} {template} as {member}: {answer.text}"
            for member in refused:
                answer = await http.request(method, path, params=query, headers=member.headers, json={})
                assert answer.status_code == 403, f"{method} {template} as {member}: {answer.text}"
            for member in allowed:
                answer = await http.request(method, path, params=query, headers=member.headers, json={})
                assert answer.status_code not in (401, 403, 404) or _past_the_run(answer), (
                    f"{method} {template} as {member}: {answer.text}"
                )
            checked.append(f"{method} {template}")
    # The document's id-bearing operations are all here, and the matrix saw each of them.
    for must in (
        "GET /api/v1/runs/{run_id}",
        "POST /api/v1/runs/{run_id}/cancel",
        "GET /api/v1/runs/{run_id}/report",
        "POST /api/v1/batch-jobs/{run_id}/resume",
        "POST /api/v1/chaos-experiments/{run_id}/approve",
        "DELETE /api/v1/pipelines/{pipeline_id}",
        "POST /api/v1/schedules/{schedule_id}/trigger",
        "DELETE /api/v1/tokens/{token_id}",
        "POST /api/v1/qa-runs",
    ):
        assert must in checked


async def test_an_operation_that_names_a_resource_always_says_what_access_it_needs(
    anonymous: httpx.AsyncClient,
) -> None:
    schema = (await anonymous.get("/openapi.json")).json()
    public = set()
    for method, path, op in operations(schema):
        if "{" in path:
            assert ACCESS in op and op[ACCESS]["resource"] != "caller", f"{method} {path}"
        if ACCESS not in op:
            public.add(f"{method} {path}")
        else:
            assert {"HTTPBearer": []} in op.get("security", []), f"{method} {path}"
            assert (
                await anonymous.request(method, path.replace("{", "x").replace("}", ""))
            ).status_code == 401
    assert public == {"GET /healthz", "POST /auth/login", "POST /auth/refresh"}


async def test_lists_show_each_user_their_teams_rows_only(api_server: ApiServer, world: World) -> None:
    owned = {v for (resource, _), v in world.ids.items() if resource != "team"}
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
        schema = (await http.get("/openapi.json")).json()
        lists = [
            path
            for method, path, op in operations(schema)
            if method == "GET" and "{" not in path and (op.get(ACCESS) or {}).get("resource") == "caller"
        ]
        assert {"/api/v1/runs", "/api/v1/pipelines", "/api/v1/schedules", "/api/v1/tokens"} <= set(lists)
        for path in lists:
            for member in world.members:
                seen = await _every_item(http, path, member)
                teams = {item["team_id"] for item in seen if item.get("team_id")}
                ids = {str(value) for item in seen for value in item.values() if isinstance(value, str)}
                if member.team_id != world.owner_team:
                    assert not ids & owned, f"{path} shows {member} {ids & owned}"
                    assert teams <= {member.team_id}, f"{path} shows {member} rows of {teams}"
                else:
                    assert teams <= {world.owner_team}, f"{path} shows {member} rows of {teams}"
        # The owners do see theirs (the schedule list catches up with Temporal's visibility).
        owner = world.admin(world.owner_team)
        for path, key in (("/api/v1/runs", ("run", None)), ("/api/v1/pipelines", ("pipeline", None))):
            assert world.ids[key] in {i[f"{key[0]}_id"] for i in await _every_item(http, path, owner)}
        async with asyncio.timeout(30):
            schedule = world.ids[("schedule", None)]
            while schedule not in {
                i["schedule_id"] for i in await _every_item(http, "/api/v1/schedules", owner)
            }:
                await asyncio.sleep(0.5)


async def _every_item(http: httpx.AsyncClient, path: str, member: Member) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await http.get(
            path, headers=member.headers, params={"limit": 200, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, f"{path} as {member}: {response.text}"
        items += response.json()["items"]
        if not (cursor := response.json().get("next_cursor")):
            return items


async def test_a_member_of_several_teams_says_which_one_a_new_run_goes_to(
    api_server: ApiServer, world: World, store: RunStore
) -> None:
    accounts = AccountStore(store.engine)
    now = datetime.now(UTC)
    first, second = world.owner_team, world.members[3].team_id
    user = await accounts.create_user(
        f"both-{uuid.uuid4().hex[:8]}@example.com", password_hash=PASSWORD_HASH, now=now
    )
    await accounts.set_membership(user.user_id, first, Role.runner, now=now)
    await accounts.set_membership(user.user_id, second, Role.viewer, now=now)
    _, token = await accounts.create_api_token(
        user.user_id, name="t", scopes=["run"], team_id=None, expires_at=None, now=now
    )
    body = QUICK_QA
    async with httpx.AsyncClient(
        base_url=api_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        # A runner in one team only: that team is the default.
        run_id = await _created(await http.post("/api/v1/qa-runs", json=body), "run_id")
        assert (await http.get(f"/api/v1/runs/{run_id}")).json()["team_id"] == first
        assert (await http.post("/api/v1/qa-runs", params={"team_id": second}, json=body)).status_code == 403
        await accounts.set_membership(user.user_id, second, Role.runner, now=now)
        several = await http.post("/api/v1/qa-runs", json=body)
        assert several.status_code == 422 and several.json()["detail"][0]["loc"] == ["query", "team_id"]
        chosen = await _created(
            await http.post("/api/v1/qa-runs", params={"team_id": second}, json=body), "run_id"
        )
        assert (await http.get(f"/api/v1/runs/{chosen}")).json()["team_id"] == second
        for made in (run_id, chosen):
            await wait_closed(http, made)
