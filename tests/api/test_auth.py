"""Login, refresh and the bearer check: every bad token of issue 7's list answers 401."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from crucible.api.app import create_app
from crucible.core.auth import AccountStore, AuthConfigError
from crucible.core.config import Settings
from crucible.core.secrets import new_key
from tests.core.auth.accounts import (
    Account,
    bearer,
    claims_for,
    login,
    make_account,
    session_secret,
    sign,
)
from tests.support.servers import ApiServer

#: A route that needs a valid bearer credential.
PROTECTED = "/api/v1/tokens"


async def assert_refused(anonymous: httpx.AsyncClient, token: str) -> None:
    response = await anonymous.get(PROTECTED, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_login_gives_tokens_that_open_protected_routes(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    tokens = await login(anonymous, account)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("crr_")
    response = await anonymous.get(PROTECTED, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.text
    # The email is matched without regard to case.
    upper = await anonymous.post(
        "/auth/login", json={"email": account.email.upper(), "password": account.password}
    )
    assert upper.status_code == 200


async def test_bad_credentials_get_the_same_401_for_unknown_users_and_bad_passwords(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    async def attempt(email: str, password: str) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = await anonymous.post("/auth/login", json={"email": email, "password": password})
        return response, time.perf_counter() - started

    await attempt("warm@example.com", "x")
    wrong, wrong_s = await attempt(account.email, "not the password")
    unknown, unknown_s = await attempt("nobody-at-all@example.com", account.password)
    for _ in range(2):  # the fastest of three, so a busy machine does not decide
        wrong_s = min(wrong_s, (await attempt(account.email, "not the password"))[1])
        unknown_s = min(unknown_s, (await attempt("nobody-at-all@example.com", account.password))[1])
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json() == {"detail": "incorrect email or password"}
        assert response.headers["www-authenticate"] == "Bearer"
    # Both check an argon2 hash, so neither answers much faster than the other.
    assert 0.4 < unknown_s / wrong_s < 2.5, (unknown_s, wrong_s)


async def test_repeated_failed_logins_make_the_email_wait_with_retry_after(
    anonymous: httpx.AsyncClient, accounts: AccountStore, settings: Settings
) -> None:
    account, other = await make_account(accounts), await make_account(accounts)
    for _ in range(settings.login_failures_per_email):
        failed = await anonymous.post("/auth/login", json={"email": account.email, "password": "guess"})
        assert failed.status_code == 401
    # Now even the right password waits: it is not checked until the window has passed.
    right = {"email": account.email, "password": account.password}
    held = await anonymous.post("/auth/login", json=right)
    assert held.status_code == 429, held.text
    assert held.json() == {"detail": "too many failed logins for this email; try again later"}
    assert 0 < int(held.headers["Retry-After"]) <= settings.login_failure_window_s
    # Another user at the same address is not held up.
    other_login = {"email": other.email, "password": other.password}
    assert (await anonymous.post("/auth/login", json=other_login)).status_code == 200


async def test_no_credential_or_another_scheme_gets_401(anonymous: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await anonymous.get(PROTECTED, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_hand_signed_token_with_the_right_key_and_claims_is_accepted(
    anonymous: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    """The control for the bad tokens below: only the one thing each changes is wrong."""
    token = sign(claims_for(settings, account.user_id), session_secret(settings))
    assert (await anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200


# The HS512 forgery reuses the 44-byte HS256 secret; PyJWT warns that it is short for SHA-512.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_bad_tokens_are_refused(
    anonymous: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    secret = session_secret(settings)
    good = claims_for(settings, account.user_id)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    header, payload, signature = sign(good, secret).split(".")
    forged_signature = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBA")
    tampered_payload = _b64({**good, "sub": "someone-else"})
    hour_ago = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    bad = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'j1'})}.{payload}.",
        "alg none, signature kept": f"{_b64({'alg': 'none', 'kid': 'j1'})}.{payload}.{signature}",
        "HS512 with the same secret": sign(good, secret, algorithm="HS512"),
        "RS256": sign(good, rsa_key, algorithm="RS256"),
        "expired": sign(claims_for(settings, account.user_id, exp=hour_ago, iat=hour_ago - 60), secret),
        "without exp": sign(claims_for(settings, account.user_id, exp=None), secret),
        "without iat": sign(claims_for(settings, account.user_id, iat=None), secret),
        "without sub": sign(claims_for(settings, account.user_id, sub=None), secret),
        "wrong aud": sign(claims_for(settings, account.user_id, aud="another-api"), secret),
        "without aud": sign(claims_for(settings, account.user_id, aud=None), secret),
        "wrong iss": sign(claims_for(settings, account.user_id, iss="https://evil.example"), secret),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "tampered signature": f"{header}.{payload}.{forged_signature}",
        "another secret": sign(good, new_key()),
        "unknown kid": sign(good, secret, kid="j9"),
        "no kid": sign(good, secret, kid=None),
        "typ refresh": sign(claims_for(settings, account.user_id, typ="refresh"), secret),
        "no typ": sign(claims_for(settings, account.user_id, typ=None), secret),
        "unknown user": sign(claims_for(settings, "no-such-user"), secret),
        "garbage": "not-a-jwt",
    }
    for name, token in bad.items():
        response = await anonymous.get(PROTECTED, headers=bearer(token))
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"', name


async def test_a_refresh_token_is_not_an_access_token(anonymous: httpx.AsyncClient, account: Account) -> None:
    tokens = await login(anonymous, account)
    await assert_refused(anonymous, tokens["refresh_token"])


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    first = await login(anonymous, account)
    second = (await anonymous.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await anonymous.get(PROTECTED, headers=bearer(second["access_token"]))).status_code == 200
    third = (await anonymous.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})).json()
    other_login = await login(anonymous, account)

    # The first token comes back: stolen, or replayed. The whole family goes.
    reused = await anonymous.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.headers["www-authenticate"].startswith("Bearer")
    newest = await anonymous.post("/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert newest.status_code == 401
    # Another login's family is not touched.
    assert (
        await anonymous.post("/auth/refresh", json={"refresh_token": other_login["refresh_token"]})
    ).status_code == 200


async def test_unknown_refresh_tokens_and_access_tokens_do_not_refresh(
    anonymous: httpx.AsyncClient, account: Account
) -> None:
    tokens = await login(anonymous, account)
    for token in ("crr_made-up", tokens["access_token"]):
        assert (await anonymous.post("/auth/refresh", json={"refresh_token": token})).status_code == 401


@pytest.fixture
async def signed_before(anonymous: httpx.AsyncClient, account: Account) -> str:
    """An access token signed with j1, the session's key, before the rotation."""
    return str((await login(anonymous, account))["access_token"])


@pytest.fixture
async def rotated_api(settings: Settings, signed_before: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API after a rotation: j2 is current, j1 (the session's key) valid for 5 more seconds."""
    until = datetime.now(UTC) + timedelta(seconds=5)
    old = session_secret(settings)
    rotated = settings.model_copy(
        update={
            "jwt_key_id": "j2",
            "jwt_secret": SecretStr(new_key()),
            "jwt_previous_keys": SecretStr(f"j1={old}@{until.isoformat()}"),
        }
    )
    server = ApiServer(create_app(rotated))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            yield http, until.isoformat()
    finally:
        await server.stop()


async def test_after_a_rotation_the_previous_key_works_for_its_grace_period_only(
    rotated_api: tuple[httpx.AsyncClient, str], signed_before: str, account: Account
) -> None:
    http, until = rotated_api
    assert (await http.get(PROTECTED, headers=bearer(signed_before))).status_code == 200
    after = await login(http, account)  # signed with j2
    assert after["access_token"] != signed_before

    await asyncio.sleep(max(0.0, (datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()) + 0.2)
    await assert_refused(http, signed_before)
    assert (await http.get(PROTECTED, headers=bearer(after["access_token"]))).status_code == 200


async def test_the_api_refuses_to_start_without_a_signing_secret_outside_dev_mode(settings: Settings) -> None:
    for secret in (None, SecretStr("too-short")):
        app = create_app(settings.model_copy(update={"jwt_secret": secret, "dev_mode": False}))
        with pytest.raises(AuthConfigError):
            async with app.router.lifespan_context(app):
                pytest.fail("the API started")


async def test_in_dev_mode_the_api_starts_with_a_secret_of_its_own(
    settings: Settings, tmp_path_factory
) -> None:
    home = tmp_path_factory.mktemp("dev-home")
    app = create_app(settings.model_copy(update={"jwt_secret": None, "dev_mode": True, "home": home}))
    async with app.router.lifespan_context(app):
        assert app.state.auth.ring.current.secret == (home / "jwt.key").read_text().strip().encode()
