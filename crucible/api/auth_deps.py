"""Authentication of API callers: ``PrincipalDep`` on a route requires a valid bearer credential.

``Authorization: Bearer <credential>`` takes an access token from ``POST /auth/login``
or a personal API token (``crc_…``). Anything else answers 401 with
``WWW-Authenticate: Bearer`` (and ``error="invalid_token"`` when a credential was given
but is not valid). Team checks go through the principal: ``principal.require(team_id,
Role.runner)`` answers 404 for a team that is not the caller's and 403 for too small a role.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crucible.core.auth import AuthError, AuthService, Principal

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An access token from POST /auth/login, or a personal API token (crc_…).",
)


def get_auth(request: Request) -> AuthService:
    auth: AuthService = request.app.state.auth
    return auth


AuthDep = Annotated[AuthService, Depends(get_auth)]


def unauthorized(message: str, *, invalid: bool) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": challenge}
    )


async def current_principal(
    auth: AuthDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The authenticated caller, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthorized("not authenticated: send Authorization: Bearer <token>", invalid=False)
    try:
        return await auth.authenticate(credentials.credentials.strip())
    except AuthError as exc:
        raise unauthorized(str(exc), invalid=True) from None


PrincipalDep = Annotated[Principal, Depends(current_principal)]
