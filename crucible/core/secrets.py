"""Secrets at rest: AES-GCM encrypted rows, handed around by id.

A workflow carries a secret's id, never its value; the activity that needs the value
opens it. The key comes from ``CRUCIBLE_SECRETS_KEY`` (32 bytes, base64) and its id
from ``CRUCIBLE_SECRETS_KEY_ID``; the id is stored with every secret. To rotate, give
the new key a new id and list the old one in ``CRUCIBLE_SECRETS_PREVIOUS_KEYS``
(``id=key,…``): new secrets are sealed with the new key, old ones still open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crucible.core.config import Settings
from crucible.core.errors import CrucibleError
from crucible.core.tables import SecretRow


class SecretsUnavailableError(CrucibleError):
    """No key is configured, or a secret cannot be opened with the keys there are."""


def new_key() -> str:
    """A fresh key, as ``CRUCIBLE_SECRETS_KEY`` takes it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _cipher_of(key: str, what: str) -> AESGCM:
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SecretsUnavailableError(f"{what} must be 32 bytes, base64-encoded")
    return AESGCM(raw)


def parse_previous_keys(text: str | None) -> dict[str, str]:
    """``"k1=…,k0=…"`` as ``{"k1": "…", "k0": "…"}``."""
    keys: dict[str, str] = {}
    for entry in (text or "").split(","):
        if entry.strip():
            key_id, sep, key = entry.strip().partition("=")
            if not sep or not key_id:
                raise SecretsUnavailableError(
                    "CRUCIBLE_SECRETS_PREVIOUS_KEYS takes id=key pairs, comma-separated"
                )
            keys[key_id] = key
    return keys


class SecretBox:
    """Encrypts and decrypts JSON values with AES-GCM; the secret's id is the associated data."""

    def __init__(
        self, key: str | None, *, key_id: str = "k1", previous: dict[str, str] | None = None
    ) -> None:
        self.key_id = key_id
        self._aead = _cipher_of(key, "CRUCIBLE_SECRETS_KEY") if key else None
        self._previous = {
            old_id: _cipher_of(old_key, f"previous key {old_id!r}")
            for old_id, old_key in (previous or {}).items()
        }

    def _cipher(self, key_id: str | None = None) -> AESGCM:
        if key_id is not None and key_id != self.key_id:
            if key_id not in self._previous:
                raise SecretsUnavailableError(
                    f"no key with id {key_id!r} (see CRUCIBLE_SECRETS_PREVIOUS_KEYS)"
                )
            return self._previous[key_id]
        if self._aead is None:
            raise SecretsUnavailableError("no secrets key is configured (set CRUCIBLE_SECRETS_KEY)")
        return self._aead

    def seal(self, secret_id: str, value: Any) -> SecretRow:
        nonce = os.urandom(12)
        data = self._cipher().encrypt(nonce, json.dumps(value).encode(), secret_id.encode())
        return SecretRow(
            secret_id=secret_id,
            key_id=self.key_id,
            nonce=nonce,
            ciphertext=data,
            created_at=datetime.now(UTC),
        )

    def seal_bytes(self, data: bytes, context: bytes) -> tuple[str, bytes]:
        """``data`` encrypted with the current key, bound to ``context``: the key's id, and nonce +
        ciphertext."""
        nonce = os.urandom(12)
        return self.key_id, nonce + self._cipher().encrypt(nonce, data, context)

    def open_bytes(self, key_id: str, blob: bytes, context: bytes) -> bytes:
        """What :meth:`seal_bytes` sealed, with the key it names (current or previous)."""
        try:
            return self._cipher(key_id).decrypt(blob[:12], blob[12:], context)
        except InvalidTag:
            raise SecretsUnavailableError(f"data sealed with key {key_id!r} does not open with it") from None

    def open(self, row: SecretRow) -> Any:
        try:
            plain = self._cipher(row.key_id).decrypt(row.nonce, row.ciphertext, row.secret_id.encode())
        except InvalidTag:
            raise SecretsUnavailableError(f"secret {row.secret_id} does not open with this key") from None
        return json.loads(plain)


def secret_box(settings: Settings) -> SecretBox:
    """The box the settings describe: the current key and any previous ones."""
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    previous = settings.secrets_previous_keys.get_secret_value() if settings.secrets_previous_keys else None
    return SecretBox(key, key_id=settings.secrets_key_id, previous=parse_previous_keys(previous))


class SecretStore:
    """Sealed secrets in PostgreSQL."""

    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    async def put(self, value: Any, *, prefix: str = "secret") -> str:
        """Seal and store ``value``; its id, the only thing to pass around."""
        secret_id = f"{prefix}-{uuid.uuid4().hex}"
        row = self.box.seal(secret_id, value)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(SecretRow.__table__).values(  # type: ignore[attr-defined]
                    secret_id=row.secret_id,
                    key_id=row.key_id,
                    nonce=row.nonce,
                    ciphertext=row.ciphertext,
                    created_at=row.created_at,
                )
            )
        return secret_id

    async def get(self, secret_id: str) -> Any:
        table = SecretRow.__table__  # type: ignore[attr-defined]
        async with self.engine.connect() as conn:
            found = (await conn.execute(table.select().where(table.c.secret_id == secret_id))).first()
        if found is None:
            raise SecretsUnavailableError(f"secret {secret_id} does not exist")
        return self.box.open(SecretRow(**found._mapping))

    async def delete(self, secret_ids: Iterable[str]) -> int:
        """Delete these secrets (what referred to them is gone); how many there were."""
        wanted = [secret_id for secret_id in secret_ids if secret_id]
        if not wanted:
            return 0
        table = SecretRow.__table__  # type: ignore[attr-defined]
        async with self.engine.begin() as conn:
            return int((await conn.execute(table.delete().where(table.c.secret_id.in_(wanted)))).rowcount)
