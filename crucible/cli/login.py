"""``crucible login`` and ``crucible logout``: a person's tokens for the CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from crucible.cli import credentials
from crucible.cli.common import Api, console, detail, fail

EXIT_FAILED = 3


def login(
    email: Annotated[str, typer.Option("--email", "-e", prompt=True, help="Your account's email.")],
    password: Annotated[
        str, typer.Option("--password", prompt=True, hide_input=True, help="Asked for when not given.")
    ],
) -> None:
    """Log in to the Crucible API and keep the tokens for the other commands.

    The tokens are saved for the API at CRUCIBLE_API_URL, readable by you only. In CI, set
    CRUCIBLE_TOKEN to an API token instead (POST /api/v1/tokens); it wins over a login.

    Example: `crucible login --email alice@example.com`
    """
    with Api(unreachable=EXIT_FAILED) as api:
        answer = api.send("POST", "/auth/login", json={"email": email, "password": password})
        if answer.status_code != 200:
            fail(f"login refused ({answer.status_code}): {detail(answer)}", EXIT_FAILED)
        body = answer.json()
        path = credentials.save(
            api.base, credentials.Saved(body["access_token"], body["refresh_token"], email)
        )
    console().print(f"logged in to {api.base} as {email}; tokens saved in {path}")
    if credentials.env_token():
        console().print(f"note: {credentials.TOKEN_ENV} is set and is used instead of this login")


def logout() -> None:
    """Forget the tokens `crucible login` saved for this API."""
    with Api(unreachable=EXIT_FAILED) as api:
        base = api.base
    forgot = credentials.forget(base)
    console().print(f"logged out of {base}" if forgot else f"no login saved for {base}")
