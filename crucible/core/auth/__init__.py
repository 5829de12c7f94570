"""Accounts and authentication: users in teams of organisations, passwords, JWTs, API tokens.

AuthError            the caller could not be authenticated (401)
AuthConfigError      the auth settings cannot be used; the API does not start

Modules: ``models`` (roles, scopes, the principal), ``passwords`` (argon2id), ``keys``
(the signing key ring and its rotation), ``access`` (access JWTs), ``store`` (tables),
``service`` (login, refresh, authenticate), ``bootstrap`` (the dev stack's accounts).
"""

from crucible.core.auth.access import AccessTokenPolicy, decode_access_token, issue_access_token
from crucible.core.auth.bootstrap import DevAccount, bootstrap_dev
from crucible.core.auth.keys import ALGORITHM, KeyRing, SigningKey, key_ring
from crucible.core.auth.models import (
    ALL_SCOPES,
    AuthConfigError,
    AuthError,
    Membership,
    Principal,
    Role,
    Scope,
)
from crucible.core.auth.passwords import hash_password, verify_password
from crucible.core.auth.service import AuthService, TokenPair
from crucible.core.auth.store import AccountStore

__all__ = [
    "ALGORITHM",
    "ALL_SCOPES",
    "AccessTokenPolicy",
    "AccountStore",
    "AuthConfigError",
    "AuthError",
    "AuthService",
    "DevAccount",
    "KeyRing",
    "Membership",
    "Principal",
    "Role",
    "Scope",
    "SigningKey",
    "TokenPair",
    "bootstrap_dev",
    "decode_access_token",
    "hash_password",
    "issue_access_token",
    "key_ring",
    "verify_password",
]
