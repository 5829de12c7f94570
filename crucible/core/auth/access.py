"""Access tokens: short-lived HS256 JWTs with a ``kid``, checked strictly.

A token is accepted only if all of these hold, else :class:`AuthError`:

- its header's ``alg`` is HS256 (the only algorithm passed to the check, so ``none``,
  HS512 and RS256 tokens are refused) and its ``kid`` names a key of the ring that is
  still valid;
- the signature matches that key;
- ``exp``, ``iat``, ``sub``, ``iss`` and ``aud`` are present; ``exp`` is in the future,
  ``iss`` and ``aud`` are the configured ones;
- ``typ`` is ``access``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from crucible.core.auth.keys import ALGORITHM, KeyRing
from crucible.core.auth.models import AuthError
from crucible.core.config import Settings

ACCESS_TYPE = "access"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
INVALID_TOKEN = "invalid or expired token"


@dataclass(frozen=True)
class AccessTokenPolicy:
    issuer: str
    audience: str
    ttl: timedelta
    leeway: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessTokenPolicy:
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=timedelta(seconds=settings.access_token_ttl_s),
            leeway=timedelta(seconds=settings.jwt_leeway_s),
        )


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    token_id: str
    issued_at: datetime
    expires_at: datetime


def issue_access_token(ring: KeyRing, policy: AccessTokenPolicy, *, user_id: str, now: datetime) -> str:
    """An access token for ``user_id``, signed with the ring's current key."""
    claims = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + policy.ttl).timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": ACCESS_TYPE,
    }
    return jwt.encode(claims, ring.current.secret, algorithm=ALGORITHM, headers={"kid": ring.current.kid})


def decode_access_token(
    token: str, ring: KeyRing, policy: AccessTokenPolicy, *, now: datetime
) -> AccessClaims:
    """The claims of a valid access token.

    Raises:
        AuthError: the token fails any check in this module's docstring. The message
            does not say which, so a caller learns nothing about the keys.
    """
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise AuthError(INVALID_TOKEN)
        key = ring.verification_key(kid, now=now)
        if key is None:
            raise AuthError(INVALID_TOKEN)
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True, "strict_aud": True},
        )
    except jwt.PyJWTError:
        raise AuthError(INVALID_TOKEN) from None
    if claims.get("typ") != ACCESS_TYPE or not isinstance(claims["sub"], str) or not claims["sub"]:
        raise AuthError(INVALID_TOKEN)
    return AccessClaims(
        user_id=claims["sub"],
        token_id=str(claims.get("jti", "")),
        issued_at=datetime.fromtimestamp(claims["iat"], now.tzinfo),
        expires_at=datetime.fromtimestamp(claims["exp"], now.tzinfo),
    )
