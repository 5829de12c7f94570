"""Password hashing: argon2id through pwdlib, with its recommended parameters."""

from __future__ import annotations

import asyncio
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

#: Longer passwords are refused before hashing, so a request cannot make argon2 chew megabytes.
MAX_PASSWORD_LENGTH = 1024


@cache
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


@cache
def _dummy_hash() -> str:
    # Verified against when the user is unknown, so both failures take as long.
    return _hasher().hash("crucible-dummy-password")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (blocking: tens of milliseconds of CPU)."""
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; with no hash (an unknown user) it spends the same time and fails."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    if password_hash is None:
        _hasher().verify(password, _dummy_hash())
        return False
    try:
        return _hasher().verify(password, password_hash)
    except Exception:
        return False


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, password_hash: str | None) -> bool:
    return await asyncio.to_thread(verify_password, password, password_hash)
