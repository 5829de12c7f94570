"""Request and response bodies of the auth and API-token routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from crucible.core.auth import Scope
from crucible.core.auth.passwords import MAX_PASSWORD_LENGTH


def _read_only() -> list[Scope]:
    return ["read"]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description='What the token is for ("ci").')
    scopes: list[Scope] = Field(
        default_factory=_read_only,
        min_length=1,
        description="read: view; run: start, cancel and signal runs; admin: manage the team. "
        "The member's own role in the team still caps what the token can do.",
    )
    team_id: str | None = Field(
        None, max_length=200, description="Limit the token to one of your teams; unset: all of them."
    )
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Unset: the token does not expire.")


class ApiTokenPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    team_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiTokenCreated(ApiTokenPublic):
    token: str = Field(description="The token itself. It is shown only now; only its hash is kept.")


class ApiTokenList(BaseModel):
    items: list[ApiTokenPublic]
    next_cursor: str | None
