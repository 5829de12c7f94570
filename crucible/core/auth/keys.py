"""The signing keys of access tokens: the current key and the ones rotated out.

Access tokens are HS256 JWTs whose header names the key that signed them (``kid``).
The current key is ``CRUCIBLE_JWT_SECRET`` with id ``CRUCIBLE_JWT_KEY_ID``. To rotate:

1. give the new secret a new id (``CRUCIBLE_JWT_KEY_ID=j2``, ``CRUCIBLE_JWT_SECRET=…``);
2. list the old one with the time until which its tokens stay valid:
   ``CRUCIBLE_JWT_PREVIOUS_KEYS=j1=<old secret>@2026-12-01T12:00:00Z``. One access
   token's lifetime (15 minutes by default) is enough grace; after ``until`` the key is
   refused even if it is still listed, so a forgotten entry does not stay valid forever.

Several previous keys are comma-separated; an entry without ``@until`` is refused. Secrets
are at least 32 bytes (``python -c "import secrets; print(secrets.token_urlsafe(48))"``)
and must not contain ``,`` or ``@``.

The API refuses to start without a secret of that length, except in dev mode
(``CRUCIBLE_DEV_MODE``, set by ``crucible dev``), where it makes one and keeps it in
``$CRUCIBLE_HOME/jwt.key`` (0600), like the secrets key.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crucible.core.auth.models import AuthConfigError
from crucible.core.config import Settings

#: The one algorithm access tokens are signed and checked with.
ALGORITHM = "HS256"
#: RFC 7518 §3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_BYTES = 32
DEV_SECRET_FILE = "jwt.key"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes
    #: Previous keys only: tokens signed with this key are refused after this time.
    valid_until: datetime | None = None


@dataclass(frozen=True)
class KeyRing:
    current: SigningKey
    previous: tuple[SigningKey, ...] = ()

    def verification_key(self, kid: str, *, now: datetime) -> SigningKey | None:
        """The key that checks a token with this ``kid`` at ``now``, or None (unknown or expired)."""
        if kid == self.current.kid:
            return self.current
        for key in self.previous:
            if key.kid == kid and key.valid_until is not None and now < key.valid_until:
                return key
        return None


def _secret_bytes(secret: str, what: str) -> bytes:
    raw = secret.encode()
    if len(raw) < MIN_SECRET_BYTES:
        raise AuthConfigError(f"{what} is {len(raw)} bytes; it must be at least {MIN_SECRET_BYTES}")
    return raw


def parse_previous_keys(text: str | None) -> tuple[SigningKey, ...]:
    """``"j1=secret@2026-12-01T12:00:00Z,…"`` as signing keys with their ``valid_until``."""
    keys: list[SigningKey] = []
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        kid, sep, rest = entry.strip().partition("=")
        secret, at, until = rest.rpartition("@")
        if not sep or not kid or not at or not secret:
            raise AuthConfigError(
                "CRUCIBLE_JWT_PREVIOUS_KEYS takes kid=secret@until entries, comma-separated"
            )
        try:
            valid_until = datetime.fromisoformat(until.strip())
        except ValueError:
            raise AuthConfigError(f"previous key {kid!r}: {until!r} is not an ISO 8601 time") from None
        if valid_until.tzinfo is None:
            valid_until = valid_until.replace(tzinfo=UTC)
        keys.append(SigningKey(kid, _secret_bytes(secret, f"previous key {kid!r}"), valid_until))
    return tuple(keys)


def dev_secret(home: Path) -> str:
    """The dev stack's own signing secret, made once and kept in ``home`` (0600)."""
    path = home / DEV_SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process of the stack made it first
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def key_ring(settings: Settings) -> KeyRing:
    """The key ring the settings describe; what the API checks before it starts.

    Raises:
        AuthConfigError: no secret, or one shorter than 32 bytes, outside dev mode; or a
            previous key that cannot be read.
    """
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value()
    elif settings.dev_mode:
        secret = dev_secret(settings.home_dir)
    else:
        raise AuthConfigError(
            "CRUCIBLE_JWT_SECRET is not set: the API will not sign tokens without a secret "
            f"(at least {MIN_SECRET_BYTES} bytes); set CRUCIBLE_DEV_MODE=true only on a dev machine"
        )
    current = SigningKey(settings.jwt_key_id, _secret_bytes(secret, "CRUCIBLE_JWT_SECRET"))
    previous_text = settings.jwt_previous_keys.get_secret_value() if settings.jwt_previous_keys else None
    previous = parse_previous_keys(previous_text)
    if any(key.kid == current.kid for key in previous):
        raise AuthConfigError(f"key id {current.kid!r} is both current and previous")
    return KeyRing(current, previous)
