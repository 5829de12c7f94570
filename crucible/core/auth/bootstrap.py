"""The dev stack's accounts: a default organisation and team, an admin, and a dev API token."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from crucible.core.auth.models import ALL_SCOPES, AuthError, Role
from crucible.core.auth.passwords import hash_password_async
from crucible.core.auth.store import AccountStore
from crucible.core.runs import DEFAULT_ORG, DEFAULT_TEAM

DEV_ADMIN_EMAIL = "admin@crucible.local"
DEV_TOKEN_FILE = "dev-token"
DEV_PASSWORD_FILE = "dev-password"


@dataclass(frozen=True)
class DevAccount:
    org_id: str
    team_id: str
    email: str
    password: str
    token: str
    token_path: Path


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


async def bootstrap_dev(engine: AsyncEngine, home: Path, *, email: str = DEV_ADMIN_EMAIL) -> DevAccount:
    """Make the dev stack's accounts, once; later calls reuse what is there.

    Creates the organisation and team ``default`` (the ids runs carry), an admin of that
    team with a random password (kept in ``$CRUCIBLE_HOME/dev-password``), and an API
    token with every scope, written to ``$CRUCIBLE_HOME/dev-token``. Both files are 0600.
    A token that no longer works (a new database, a revoked token) is replaced.
    """
    store = AccountStore(engine)
    now = datetime.now(UTC)
    await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
    await store.ensure_org(DEFAULT_ORG, name="Default organisation", now=now)
    await store.ensure_team(DEFAULT_TEAM, org_id=DEFAULT_ORG, name="Default team", now=now)

    password_path = home / DEV_PASSWORD_FILE
    password = await asyncio.to_thread(_read, password_path)
    user = await store.user_by_email(email)
    if user is None or password is None:
        password = password or secrets.token_urlsafe(16)
        password_hash = await hash_password_async(password)
        if user is None:
            user = await store.create_user(email, password_hash=password_hash, now=now)
        else:  # the password file was lost: the admin gets the new one written below
            await store.set_password(user.user_id, password_hash=password_hash)
        await asyncio.to_thread(_write_private, password_path, password)
    await store.set_membership(user.user_id, DEFAULT_TEAM, Role.admin, now=now)

    token_path = home / DEV_TOKEN_FILE
    token = await asyncio.to_thread(_read, token_path)
    if token is not None:
        try:
            row = await store.use_api_token(token, now=now)
            if row.user_id != user.user_id:
                token = None
        except AuthError:
            token = None
    if token is None:
        _, token = await store.create_api_token(
            user.user_id, name="dev", scopes=list(ALL_SCOPES), team_id=None, expires_at=None, now=now
        )
        await asyncio.to_thread(_write_private, token_path, token)
    return DevAccount(DEFAULT_ORG, DEFAULT_TEAM, user.email, password, token, token_path)
