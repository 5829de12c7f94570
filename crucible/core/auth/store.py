"""Accounts in PostgreSQL: organisations, teams, users, memberships and both kinds of token.

Tokens are random strings of 256 bits; only their sha256 is stored (a slow hash adds
nothing at that entropy), so a leaked table lets no one log in. API tokens start with
``crc_`` and refresh tokens with ``crr_``, so secret scanners can find them and neither
can be mistaken for the other or for a JWT.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, Table, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crucible.core.auth.models import AuthError, Membership, Role
from crucible.core.store import decode_cursor, encode_cursor
from crucible.core.tables import (
    ApiTokenRow,
    MembershipRow,
    OrganisationRow,
    RefreshTokenRow,
    TeamRow,
    UserRow,
)

ORGS: Table = OrganisationRow.__table__  # type: ignore[attr-defined]
TEAMS: Table = TeamRow.__table__  # type: ignore[attr-defined]
USERS: Table = UserRow.__table__  # type: ignore[attr-defined]
MEMBERSHIPS: Table = MembershipRow.__table__  # type: ignore[attr-defined]
API_TOKENS: Table = ApiTokenRow.__table__  # type: ignore[attr-defined]
REFRESH_TOKENS: Table = RefreshTokenRow.__table__  # type: ignore[attr-defined]

API_TOKEN_PREFIX = "crc_"
REFRESH_TOKEN_PREFIX = "crr_"
#: ``last_used_at`` moves at most this often, so a busy CI token is not a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=30)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class ApiTokenPage:
    items: list[ApiTokenRow]
    next_cursor: str | None


@dataclass(frozen=True)
class RefreshOutcome:
    """A rotation: the user it belongs to and the new token (plain, to hand out once)."""

    user_id: str
    token: str


class AccountStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # Organisations, teams, users, memberships

    async def ensure_org(self, org_id: str, *, name: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(ORGS).values(org_id=org_id, name=name, created_at=now).on_conflict_do_nothing()
            )

    async def ensure_team(self, team_id: str, *, org_id: str, name: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(TEAMS)
                .values(team_id=team_id, org_id=org_id, name=name, created_at=now)
                .on_conflict_do_nothing(index_elements=["team_id"])
            )

    async def org_exists(self, org_id: str) -> bool:
        return await self._exists(select(ORGS.c.org_id).where(ORGS.c.org_id == org_id))

    async def team_exists(self, team_id: str) -> bool:
        return await self._exists(select(TEAMS.c.team_id).where(TEAMS.c.team_id == team_id))

    async def _exists(self, query: Select[tuple[str]]) -> bool:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def create_user(self, email: str, *, password_hash: str, now: datetime) -> UserRow:
        row = UserRow(
            user_id=uuid.uuid4().hex,
            email=normalise_email(email),
            password_hash=password_hash,
            created_at=now,
        )
        async with self.engine.begin() as conn:
            await conn.execute(USERS.insert().values(**row.model_dump()))
        return row

    async def set_password(self, user_id: str, *, password_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                USERS.update().where(USERS.c.user_id == user_id).values(password_hash=password_hash)
            )

    async def user_by_email(self, email: str) -> UserRow | None:
        return await self._user(USERS.c.email == normalise_email(email))

    async def user_by_id(self, user_id: str) -> UserRow | None:
        return await self._user(USERS.c.user_id == user_id)

    async def _user(self, where: object) -> UserRow | None:
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(USERS).where(where))).first()  # type: ignore[arg-type]
        return UserRow(**found._mapping) if found else None

    async def set_membership(self, user_id: str, team_id: str, role: Role, *, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(MEMBERSHIPS)
                .values(user_id=user_id, team_id=team_id, role=role.name, created_at=now)
                .on_conflict_do_update(index_elements=["user_id", "team_id"], set_={"role": role.name})
            )

    async def remove_membership(self, user_id: str, team_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                MEMBERSHIPS.delete().where(MEMBERSHIPS.c.user_id == user_id, MEMBERSHIPS.c.team_id == team_id)
            )

    async def memberships(self, user_id: str) -> tuple[Membership, ...]:
        query = (
            select(TEAMS.c.org_id, MEMBERSHIPS.c.team_id, MEMBERSHIPS.c.role)
            .join(TEAMS, TEAMS.c.team_id == MEMBERSHIPS.c.team_id)
            .where(MEMBERSHIPS.c.user_id == user_id)
            .order_by(MEMBERSHIPS.c.team_id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return tuple(Membership(r.org_id, r.team_id, Role[r.role]) for r in rows)

    async def record_login(self, user_id: str, *, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(USERS).where(USERS.c.user_id == user_id).values(last_login_at=now))

    # API tokens

    async def create_api_token(
        self,
        user_id: str,
        *,
        name: str,
        scopes: Sequence[str],
        team_id: str | None,
        expires_at: datetime | None,
        now: datetime,
    ) -> tuple[ApiTokenRow, str]:
        """A new token: its row and the plain token, which is never stored."""
        plain = new_token(API_TOKEN_PREFIX)
        row = ApiTokenRow(
            token_id=uuid.uuid4().hex,
            user_id=user_id,
            name=name,
            token_hash=token_hash(plain),
            scopes=list(scopes),
            team_id=team_id,
            created_at=now,
            expires_at=expires_at,
        )
        async with self.engine.begin() as conn:
            await conn.execute(API_TOKENS.insert().values(**row.model_dump()))
        return row, plain

    async def api_tokens(self, user_id: str, *, limit: int = 50, cursor: str | None = None) -> ApiTokenPage:
        query = select(API_TOKENS).where(API_TOKENS.c.user_id == user_id)
        if cursor is not None:
            created_at, token_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    API_TOKENS.c.created_at < created_at,
                    and_(API_TOKENS.c.created_at == created_at, API_TOKENS.c.token_id < token_id),
                )
            )
        query = query.order_by(API_TOKENS.c.created_at.desc(), API_TOKENS.c.token_id.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = [ApiTokenRow(**r._mapping) for r in (await conn.execute(query)).all()]
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return ApiTokenPage(rows, encode_cursor(last.created_at, last.token_id) if last else None)

    async def revoke_api_token(self, user_id: str, token_id: str, *, now: datetime) -> bool:
        """Revoke one of ``user_id``'s tokens; False if they have none with that id."""
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    select(API_TOKENS.c.revoked_at)
                    .where(API_TOKENS.c.token_id == token_id, API_TOKENS.c.user_id == user_id)
                    .with_for_update()
                )
            ).first()
            if found is None:
                return False
            if found.revoked_at is None:
                await conn.execute(
                    update(API_TOKENS).where(API_TOKENS.c.token_id == token_id).values(revoked_at=now)
                )
        return True

    async def use_api_token(self, plain: str, *, now: datetime) -> ApiTokenRow:
        """The live token ``plain`` is, its use recorded.

        Raises:
            AuthError: no such token, or it is revoked or expired.
        """
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(select(API_TOKENS).where(API_TOKENS.c.token_hash == token_hash(plain)))
            ).first()
        row = ApiTokenRow(**found._mapping) if found else None
        if (
            row is None
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
        ):
            raise AuthError("invalid, expired or revoked API token")
        if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(API_TOKENS).where(API_TOKENS.c.token_id == row.token_id).values(last_used_at=now)
                )
            row.last_used_at = now
        return row

    # Refresh tokens

    async def issue_refresh_token(
        self, user_id: str, *, ttl: timedelta, now: datetime, family_id: str | None = None
    ) -> str:
        """A new refresh token; without ``family_id`` it starts a new family (a login)."""
        plain = new_token(REFRESH_TOKEN_PREFIX)
        async with self.engine.begin() as conn:
            await conn.execute(
                REFRESH_TOKENS.insert().values(**self._refresh_row(user_id, plain, ttl, now, family_id))
            )
        return plain

    @staticmethod
    def _refresh_row(
        user_id: str, plain: str, ttl: timedelta, now: datetime, family_id: str | None
    ) -> dict[str, object]:
        return RefreshTokenRow(
            token_id=uuid.uuid4().hex,
            user_id=user_id,
            family_id=family_id or uuid.uuid4().hex,
            token_hash=token_hash(plain),
            issued_at=now,
            expires_at=now + ttl,
        ).model_dump()

    async def rotate_refresh_token(self, plain: str, *, ttl: timedelta, now: datetime) -> RefreshOutcome:
        """Spend ``plain`` and issue the next token of its family.

        A token that was already spent means it was stolen or replayed: the whole family
        is revoked (the legitimate holder logs in again).

        Raises:
            AuthError: unknown, expired, revoked or reused token (after revoking its family).
        """
        reused = False
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    select(REFRESH_TOKENS)
                    .where(REFRESH_TOKENS.c.token_hash == token_hash(plain))
                    .with_for_update()
                )
            ).first()
            if found is None or found.revoked_at is not None or found.expires_at <= now:
                raise AuthError("invalid or expired refresh token")
            if found.used_at is not None:
                reused = True
                await conn.execute(
                    update(REFRESH_TOKENS)
                    .where(
                        REFRESH_TOKENS.c.family_id == found.family_id, REFRESH_TOKENS.c.revoked_at.is_(None)
                    )
                    .values(revoked_at=now)
                )
            else:
                await conn.execute(
                    update(REFRESH_TOKENS)
                    .where(REFRESH_TOKENS.c.token_id == found.token_id)
                    .values(used_at=now)
                )
                nxt = new_token(REFRESH_TOKEN_PREFIX)
                await conn.execute(
                    REFRESH_TOKENS.insert().values(
                        **self._refresh_row(found.user_id, nxt, ttl, now, found.family_id)
                    )
                )
        if reused:
            raise AuthError("invalid or expired refresh token")
        return RefreshOutcome(found.user_id, nxt)

    async def revoke_refresh_tokens(self, user_id: str, *, now: datetime) -> int:
        """Revoke every live refresh token of ``user_id`` (a password change, a disabled user)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(REFRESH_TOKENS)
                .where(REFRESH_TOKENS.c.user_id == user_id, REFRESH_TOKENS.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return int(result.rowcount)
