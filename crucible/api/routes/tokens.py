"""Personal API tokens, for CI: issued, listed and revoked by their owner."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from crucible.api.access import ACCESS_KEY
from crucible.api.auth_deps import AuthDep, PrincipalDep
from crucible.api.auth_models import ApiTokenCreate, ApiTokenCreated, ApiTokenList, ApiTokenPublic
from crucible.api.models import CursorQuery
from crucible.core.auth import Principal
from crucible.core.errors import ForbiddenError, NotFoundError
from crucible.core.tables import ApiTokenRow

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer credential."},
    403: {"description": "An API token without the admin scope cannot manage tokens."},
}


def _public(row: ApiTokenRow) -> dict[str, object]:
    return {
        "id": row.token_id,
        "name": row.name,
        "scopes": row.scopes,
        "team_id": row.team_id,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
    }


def _may_manage_tokens(principal: Principal) -> None:
    # A leaked CI token must not be able to mint more tokens, unless it was made for that.
    if principal.via == "api_token" and not principal.has_scope("admin"):
        raise ForbiddenError("managing API tokens needs a login's access token or an admin-scoped API token")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**AUTH_ERRORS, 404: {"description": "You are in no team with that id."}},
)
async def create_token(body: ApiTokenCreate, principal: PrincipalDep, auth: AuthDep) -> ApiTokenCreated:
    """Issue a personal API token. The token itself is in this answer only; keep it."""
    _may_manage_tokens(principal)
    if body.team_id is not None and principal.role_in(body.team_id) is None:
        raise NotFoundError("team", body.team_id)
    now = auth.clock()
    expires_at = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, plain = await auth.accounts.create_api_token(
        principal.user_id,
        name=body.name,
        scopes=sorted(set(body.scopes)),
        team_id=body.team_id,
        expires_at=expires_at,
        now=now,
    )
    return ApiTokenCreated(**_public(row), token=plain)


@router.get("", responses=AUTH_ERRORS)
async def list_tokens(
    principal: PrincipalDep,
    auth: AuthDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
) -> ApiTokenList:
    """Your API tokens, newest first, revoked ones included; never the tokens themselves."""
    page = await auth.accounts.api_tokens(principal.user_id, limit=limit, cursor=cursor or None)
    return ApiTokenList(
        items=[ApiTokenPublic(**_public(row)) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, 404: {"description": "You have no token with that id."}},
    openapi_extra={ACCESS_KEY: {"resource": "api_token", "owner": "user"}},
)
async def revoke_token(token_id: str, principal: PrincipalDep, auth: AuthDep) -> Response:
    """Revoke one of your API tokens; it stops working at once. Revoking twice is harmless."""
    _may_manage_tokens(principal)
    if not await auth.accounts.revoke_api_token(principal.user_id, token_id, now=auth.clock()):
        raise NotFoundError("API token", token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
