"""Test accounts: a fresh organisation, team and user per call, and hand-made JWTs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt

from crucible.core.auth import AccountStore, Role, hash_password
from crucible.core.config import Settings

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    password: str
    org_id: str
    team_id: str


async def make_account(accounts: AccountStore, *, role: Role = Role.admin) -> Account:
    """A user who is ``role`` in a team of their own organisation."""
    suffix = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    org_id, team_id = f"org-{suffix}", f"team-{suffix}"
    await accounts.ensure_org(org_id, name=f"Org {suffix}", now=now)
    await accounts.ensure_team(team_id, org_id=org_id, name="QA", now=now)
    user = await accounts.create_user(
        f"User-{suffix}@Example.com", password_hash=hash_password(PASSWORD), now=now
    )
    await accounts.set_membership(user.user_id, team_id, role, now=now)
    return Account(user.user_id, user.email, PASSWORD, org_id, team_id)


def claims_for(settings: Settings, user_id: str, **changes: Any) -> dict[str, Any]:
    """Valid access-token claims for ``user_id``; ``changes`` override them (None drops one)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(
    claims: dict[str, Any], secret: str | bytes, *, kid: str | None = "j1", algorithm: str = "HS256"
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def session_secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


async def login(api: httpx.AsyncClient, account: Account) -> dict[str, str]:
    """The token pair ``POST /auth/login`` gives ``account``."""
    response = await api.post("/auth/login", json={"email": account.email, "password": account.password})
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
