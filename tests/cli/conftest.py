"""What the CLI tests share: the environment that points the CLI at the session's API, and the
CLI run in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crucible.cli import app
from tests.support.servers import ApiServer


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def env(api_server: ApiServer, tmp_path: Path, auth_headers: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: the session's API and the default team admin's token, a home
    of the test's own, wide lines."""
    return {
        "CRUCIBLE_API_URL": api_server.url,
        "CRUCIBLE_TOKEN": token_of(auth_headers),
        "CRUCIBLE_HOME": str(tmp_path),
        "COLUMNS": "200",
    }


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., Awaitable[Result]]:
    """`crucible <args>` in this process. One at a time: CliRunner swaps sys.stdout.

    ``token=`` runs it as someone else (their API token).
    """
    runner = CliRunner()

    async def invoke(*args: str, token: str | None = None) -> Result:
        # The API runs in this event loop, so the (blocking) CLI runs in a thread.
        run_env = env if token is None else {**env, "CRUCIBLE_TOKEN": token}
        return await asyncio.to_thread(runner.invoke, app, list(args), env=run_env)

    return invoke
