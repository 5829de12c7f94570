"""Secrets at rest: sealed with AES-GCM, bound to their id, opened only with their key."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crucible.core.secrets import (
    SecretBox,
    SecretStore,
    SecretsUnavailableError,
    new_key,
    parse_previous_keys,
)
from crucible.core.store import RunStore


async def test_a_secret_is_stored_sealed_and_opens_with_its_key_only(store: RunStore) -> None:
    key = new_key()
    secrets = SecretStore(store.engine, SecretBox(key))
    secret_id = await secrets.put({"Authorization": "Bearer top-secret"}, prefix="headers")
    assert secret_id.startswith("headers-")
    assert await secrets.get(secret_id) == {"Authorization": "Bearer top-secret"}

    async with store.engine.connect() as conn:
        raw = (
            await conn.execute(text("SELECT ciphertext FROM secrets WHERE secret_id = :i"), {"i": secret_id})
        ).one()
    assert b"top-secret" not in bytes(raw[0])

    with pytest.raises(SecretsUnavailableError, match="does not open"):
        await SecretStore(store.engine, SecretBox(new_key())).get(secret_id)


def test_a_sealed_value_cannot_be_moved_to_another_id() -> None:
    box = SecretBox(new_key())
    row = box.seal("secret-a", {"x": 1})
    row.secret_id = "secret-b"
    with pytest.raises(SecretsUnavailableError):
        box.open(row)


def test_a_missing_or_malformed_key_says_so() -> None:
    with pytest.raises(SecretsUnavailableError, match="no secrets key"):
        SecretBox(None).seal("s", 1)
    with pytest.raises(SecretsUnavailableError, match="32 bytes"):
        SecretBox("c2hvcnQ=")


def test_a_rotated_key_still_opens_what_it_sealed() -> None:
    old, new = new_key(), new_key()
    sealed = SecretBox(old, key_id="k1").seal("secret-a", {"x": 1})
    rotated = SecretBox(new, key_id="k2", previous=parse_previous_keys(f"k1={old}"))
    assert rotated.open(sealed) == {"x": 1}
    assert rotated.seal("secret-b", 2).key_id == "k2"
    with pytest.raises(SecretsUnavailableError, match="no key with id 'k1'"):
        SecretBox(new, key_id="k2").open(sealed)
