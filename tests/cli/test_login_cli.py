"""`crucible login`: the tokens are kept for the user only, sent with every command, refreshed
once when the API refuses the access token, and forgotten by `crucible logout`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from typer.testing import Result

from crucible.cli.common import Api
from crucible.core.auth.bootstrap import bootstrap_dev
from crucible.core.store import RunStore


async def test_login_then_commands_use_and_refresh_the_tokens(
    cli: Callable[..., Awaitable[Result]],
    env: dict[str, str],
    store: RunStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = await bootstrap_dev(store.engine, tmp_path / "accounts")
    config = tmp_path / "config"
    env["CRUCIBLE_CONFIG_DIR"] = str(config)
    del env["CRUCIBLE_TOKEN"]  # a token in the environment wins over a login

    refused = await cli("login", "--email", account.email, "--password", "not-it")
    assert refused.exit_code == 3 and "login refused (401)" in refused.output
    assert not (config / "credentials.json").exists()

    logged_in = await cli("login", "--email", account.email, "--password", account.password)
    assert logged_in.exit_code == 0, logged_in.output
    path = config / "credentials.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    saved = json.loads(path.read_text())[env["CRUCIBLE_API_URL"]]
    assert saved["email"] == account.email and saved["access_token"] and saved["refresh_token"]

    # An access token the API no longer takes is swapped once, with the refresh token.
    saved["access_token"] = "expired-or-tampered"
    path.write_text(json.dumps({env["CRUCIBLE_API_URL"]: saved}))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Api(unreachable=3) as api:
        listed = await asyncio.to_thread(api.send, "GET", "/api/v1/tokens")
    assert listed.status_code == 200, listed.text
    refreshed = json.loads(path.read_text())[env["CRUCIBLE_API_URL"]]
    assert refreshed["refresh_token"] != saved["refresh_token"]

    # An API token in CRUCIBLE_TOKEN wins over the login.
    monkeypatch.setenv("CRUCIBLE_TOKEN", account.token)
    with Api(unreachable=3) as api:
        assert api.client.headers["Authorization"] == f"Bearer {account.token}"

    out = await cli("logout")
    assert out.exit_code == 0 and "logged out" in out.output
    assert env["CRUCIBLE_API_URL"] not in json.loads(path.read_text())
