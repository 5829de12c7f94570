"""Logging in and refreshing: a short-lived access token and a rotating refresh token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

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


@router.post(
    "/login",
    responses={
        **UNAUTHORIZED,
        429: {"description": "Too many failed logins for this email or from this address; see Retry-After."},
    },
)
async def login(body: LoginRequest, auth: AuthDep, request: Request) -> TokenResponse:
    """Trade an email and password for an access token and a refresh token.

    After several failed logins for one email (or many from one address) within a window,
    logins for it wait: 429 with `Retry-After`, the password unchecked."""
    address = request.client.host if request.client is not None else ""
    try:
        return _response(await auth.login(body.email, body.password, address=address))
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
