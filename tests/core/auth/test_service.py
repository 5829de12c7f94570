"""Login, refresh and authentication against the real tables, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from crucible.core.auth import (
    AccessTokenPolicy,
    AccountStore,
    AuthError,
    AuthService,
    KeyRing,
    Role,
    SigningKey,
)
from crucible.core.store import RunStore
from tests.core.auth.accounts import make_account


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(store: RunStore, clock: Clock) -> AuthService:
    policy = AccessTokenPolicy("crucible", "crucible-api", ttl=timedelta(minutes=15), leeway=timedelta(0))
    ring = KeyRing(SigningKey("j1", b"k" * 32))
    return AuthService(AccountStore(store.engine), ring, policy, refresh_ttl=timedelta(hours=1), clock=clock)


async def test_the_principal_of_a_login_has_the_user_s_memberships(auth: AuthService) -> None:
    account = await make_account(auth.accounts, role=Role.runner)
    pair = await auth.login(account.email, account.password)
    principal = await auth.authenticate(pair.access_token)
    assert (principal.user_id, principal.email, principal.via) == (account.user_id, account.email, "access")
    assert principal.role_in(account.team_id) == Role.runner
    assert [m.org_id for m in principal.memberships] == [account.org_id]


async def test_a_refresh_token_expires(auth: AuthService, clock: Clock) -> None:
    account = await make_account(auth.accounts)
    pair = await auth.login(account.email, account.password)
    clock.now += timedelta(hours=1, seconds=1)
    with pytest.raises(AuthError):
        await auth.refresh(pair.refresh_token)


async def test_a_disabled_user_cannot_log_in_refresh_or_use_tokens(
    auth: AuthService, store: RunStore
) -> None:
    account = await make_account(auth.accounts)
    pair = await auth.login(account.email, account.password)
    _, api_token = await auth.accounts.create_api_token(
        account.user_id, name="ci", scopes=["read"], team_id=None, expires_at=None, now=auth.clock()
    )
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET disabled = true WHERE user_id = :u"), {"u": account.user_id}
        )
    with pytest.raises(AuthError, match="incorrect email or password"):
        await auth.login(account.email, account.password)
    for credential in (pair.access_token, api_token):
        with pytest.raises(AuthError):
            await auth.authenticate(credential)
    with pytest.raises(AuthError):
        await auth.refresh(pair.refresh_token)


async def test_an_access_token_expires_after_its_lifetime(auth: AuthService, clock: Clock) -> None:
    account = await make_account(auth.accounts)
    pair = await auth.login(account.email, account.password)
    assert pair.expires_in == 900
    clock.now -= timedelta(minutes=16)  # a token issued 16 minutes ago
    old = auth.access_token(account.user_id)
    with pytest.raises(AuthError):
        await auth.authenticate(old)


async def test_an_api_token_s_last_use_is_recorded_at_most_every_30_seconds(
    auth: AuthService, clock: Clock
) -> None:
    account = await make_account(auth.accounts)
    _, plain = await auth.accounts.create_api_token(
        account.user_id, name="ci", scopes=["run"], team_id=account.team_id, expires_at=None, now=clock.now
    )
    first = await auth.accounts.use_api_token(plain, now=clock.now)
    assert first.last_used_at == clock.now
    later = clock.now + timedelta(seconds=5)
    assert (await auth.accounts.use_api_token(plain, now=later)).last_used_at == clock.now
    much_later = clock.now + timedelta(seconds=31)
    assert (await auth.accounts.use_api_token(plain, now=much_later)).last_used_at == much_later
    principal = await auth.authenticate(plain)
    assert (principal.via, principal.token_team_id, principal.role_in(account.team_id)) == (
        "api_token",
        account.team_id,
        Role.runner,
    )
