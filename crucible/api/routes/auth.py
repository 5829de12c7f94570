"""Logging in and refreshing: a short-lived access token and a rotating refresh token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from crucible.api.auth_deps import AuthDep, unauthorized
from crucible.api.auth_models import LoginRequest, RefreshRequest, TokenResponse
from crucible.core.auth import AuthError, TokenPair

router = APIRouter(prefix="/auth", tags=["auth"])

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Bad credentials, or an invalid, expired or reused refresh token."}
}


def _response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
    )


@router.post("/login", responses=UNAUTHORIZED)
async def login(body: LoginRequest, auth: AuthDep) -> TokenResponse:
    """Trade an email and password for an access token and a refresh token."""
    try:
        return _response(await auth.login(body.email, body.password))
    except AuthError as exc:
        raise unauthorized(str(exc), invalid=False) from None


@router.post("/refresh", responses=UNAUTHORIZED)
async def refresh(body: RefreshRequest, auth: AuthDep) -> TokenResponse:
    """Trade a refresh token for a new pair. Each refresh token works once: a second use
    revokes every token of its login, and both holders must log in again."""
    try:
        return _response(await auth.refresh(body.refresh_token))
    except AuthError as exc:
        raise unauthorized(str(exc), invalid=True) from None
