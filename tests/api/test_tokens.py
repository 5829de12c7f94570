"""Personal API tokens: shown once, stored hashed, listed without secrets, revoked, expiring."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from crucible.core.auth import AccountStore
from crucible.core.store import RunStore
from tests.core.auth.accounts import Account, bearer, login, make_account

URL = "/api/v1/tokens"


async def access_headers(anonymous: httpx.AsyncClient, account: Account) -> dict[str, str]:
    return bearer((await login(anonymous, account))["access_token"])


async def issue(anonymous: httpx.AsyncClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = await anonymous.post(URL, json={"name": "ci", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_token_is_shown_once_stored_hashed_and_listed_without_its_secret(
    anonymous: httpx.AsyncClient, account: Account, store: RunStore
) -> None:
    headers = await access_headers(anonymous, account)
    created = await issue(
        anonymous, headers, scopes=["read", "run"], team_id=account.team_id, expires_in_days=30
    )
    token = str(created["token"])
    assert token.startswith("crc_") and len(token) > 40
    assert created["scopes"] == ["read", "run"]
    assert created["team_id"] == account.team_id
    assert created["last_used_at"] is None and created["revoked_at"] is None
    expires = datetime.fromisoformat(str(created["expires_at"]))
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)

    async with store.engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT token_hash FROM api_tokens WHERE token_id = :i"), {"i": created["id"]}
            )
        ).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()

    listed = (await anonymous.get(URL, headers=headers)).json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert "token" not in listed["items"][0] and token not in str(listed)
    assert listed["next_cursor"] is None


async def test_using_a_token_records_when_and_the_token_acts_for_its_user(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    headers = await access_headers(anonymous, account)
    created = await issue(anonymous, headers, scopes=["read", "run", "admin"])
    as_token = {"Authorization": f"Bearer {created['token']}"}
    listed = await anonymous.get(URL, headers=as_token)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["last_used_at"] is not None
    assert datetime.now(UTC) - datetime.fromisoformat(item["last_used_at"]) < timedelta(seconds=30)


async def test_a_revoked_token_stops_working_at_once(anonymous: httpx.AsyncClient, account: Account) -> None:
    headers = await access_headers(anonymous, account)
    created = await issue(anonymous, headers, scopes=["admin"])
    as_token = {"Authorization": f"Bearer {created['token']}"}
    assert (await anonymous.get(URL, headers=as_token)).status_code == 200

    assert (await anonymous.delete(f"{URL}/{created['id']}", headers=headers)).status_code == 204
    refused = await anonymous.get(URL, headers=as_token)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (await anonymous.delete(f"{URL}/{created['id']}", headers=headers)).status_code == 204
    [item] = (await anonymous.get(URL, headers=headers)).json()["items"]
    assert item["revoked_at"] is not None


async def test_an_expired_token_is_refused(
    anonymous: httpx.AsyncClient, account: Account, accounts: AccountStore
) -> None:
    now = datetime.now(UTC)
    _, plain = await accounts.create_api_token(
        account.user_id,
        name="old",
        scopes=["read"],
        team_id=None,
        expires_at=now - timedelta(seconds=1),
        now=now,
    )
    assert (await anonymous.get(URL, headers={"Authorization": f"Bearer {plain}"})).status_code == 401
    assert (await anonymous.get(URL, headers={"Authorization": "Bearer crc_made-up"})).status_code == 401


async def test_tokens_of_other_users_are_invisible(
    anonymous: httpx.AsyncClient, account: Account, accounts: AccountStore
) -> None:
    mine = await access_headers(anonymous, account)
    theirs = await access_headers(anonymous, await make_account(accounts))
    created = await issue(anonymous, mine)
    assert (await anonymous.get(URL, headers=theirs)).json()["items"] == []
    assert (await anonymous.delete(f"{URL}/{created['id']}", headers=theirs)).status_code == 404
    assert (await anonymous.get(URL, headers=mine)).json()["items"][0]["revoked_at"] is None


async def test_a_token_can_be_limited_only_to_a_team_of_the_caller(
    anonymous: httpx.AsyncClient, account: Account, accounts: AccountStore
) -> None:
    headers = await access_headers(anonymous, account)
    other = await make_account(accounts)
    response = await anonymous.post(URL, json={"name": "x", "team_id": other.team_id}, headers=headers)
    assert response.status_code == 404
    assert (
        await anonymous.post(URL, json={"name": "x", "scopes": ["root"]}, headers=headers)
    ).status_code == 422


async def test_a_token_without_the_admin_scope_cannot_mint_or_revoke_tokens(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    headers = await access_headers(anonymous, account)
    created = await issue(anonymous, headers, scopes=["read", "run"])
    as_token = {"Authorization": f"Bearer {created['token']}"}
    assert (await anonymous.post(URL, json={"name": "more"}, headers=as_token)).status_code == 403
    assert (await anonymous.delete(f"{URL}/{created['id']}", headers=as_token)).status_code == 403
    assert (await anonymous.get(URL, headers=as_token)).status_code == 200


async def test_tokens_are_listed_newest_first_a_page_at_a_time(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    headers = await access_headers(anonymous, account)
    ids = [str((await issue(anonymous, headers, name=f"t{i}"))["id"]) for i in range(3)]
    first = (await anonymous.get(URL, params={"limit": 2}, headers=headers)).json()
    second = (
        await anonymous.get(URL, params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers)
    ).json()
    assert [t["id"] for t in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
