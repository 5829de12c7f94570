"""``crucible accounts``: an operator's organisations, teams, users, memberships and quotas.

Like ``crucible targets``, it writes the database the settings name (``DATABASE_URL``, or the
``crucible dev`` stack's through ``$CRUCIBLE_HOME/stack.env``), not the API: who belongs
where is the installation's business. Every command can run again with the same effect.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from crucible.cli.common import in_database

if TYPE_CHECKING:  # the database's modules load when a command runs, not with every CLI command
    from sqlalchemy.ext.asyncio import AsyncEngine

accounts_app = typer.Typer(
    help="Organisations, teams, users, their roles, and team quotas (in the database).",
    no_args_is_help=True,
)

T = TypeVar("T")
ROLES = ("viewer", "runner", "admin")
MIN_PASSWORD = 12


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@accounts_app.command("org")
def org(
    org_id: Annotated[str, typer.Argument(help="Its id, e.g. acme.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Its name (default: the id).")] = "",
) -> None:
    """Create an organisation (nothing happens if it exists)."""
    from crucible.core.auth import AccountStore

    async def use(engine: AsyncEngine) -> None:
        await AccountStore(engine).ensure_org(org_id, name=name or org_id, now=datetime.now(UTC))

    in_database(use)
    typer.echo(f"organisation {org_id}")


@accounts_app.command("team")
def team(
    team_id: Annotated[str, typer.Argument(help="Its id, e.g. payments.", show_default=False)],
    org_id: Annotated[str, typer.Option("--org", help="Its organisation.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Its name (default: the id).")] = "",
) -> None:
    """Create a team in an organisation (nothing happens if it exists)."""
    from crucible.core.auth import AccountStore

    async def use(engine: AsyncEngine) -> str | None:
        store = AccountStore(engine)
        if not await store.org_exists(org_id):
            return f"no organisation {org_id!r}: create it with `crucible accounts org {org_id}`"
        await store.ensure_team(team_id, org_id=org_id, name=name or team_id, now=datetime.now(UTC))
        return None

    if problem := in_database(use):
        raise _fail(problem)
    typer.echo(f"team {team_id} in {org_id}")


@accounts_app.command("user")
def user(
    email: Annotated[str, typer.Argument(help="The user's email, their login.", show_default=False)],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (else: asked for).")
    ] = False,
) -> None:
    """Create a user, or set an existing user's password."""
    from crucible.core.auth import AccountStore, hash_password

    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    if len(password) < MIN_PASSWORD:
        raise _fail(f"a password has at least {MIN_PASSWORD} characters")
    password_hash = hash_password(password)

    async def use(engine: AsyncEngine) -> bool:
        store = AccountStore(engine)
        found = await store.user_by_email(email)
        if found is None:
            await store.create_user(email, password_hash=password_hash, now=datetime.now(UTC))
            return True
        await store.set_password(found.user_id, password_hash=password_hash)
        return False

    created = in_database(use)
    typer.echo(f"user {email} {'created' if created else 'has a new password'}")


@accounts_app.command("member")
def member(
    email: Annotated[str, typer.Argument(help="The user's email.", show_default=False)],
    team_id: Annotated[str, typer.Argument(help="The team.", show_default=False)],
    role: Annotated[
        str, typer.Option("--role", help="viewer, runner or admin.", show_default=True)
    ] = "runner",
    remove: Annotated[bool, typer.Option("--remove", help="Take the user out of the team.")] = False,
) -> None:
    """Give a user a role in a team (or change it), or take them out with --remove."""
    from crucible.core.auth import AccountStore, Role

    if role not in ROLES:
        raise _fail(f"--role is one of {', '.join(ROLES)}")

    async def use(engine: AsyncEngine) -> str | None:
        store = AccountStore(engine)
        found = await store.user_by_email(email)
        if found is None:
            return f"no user {email!r}: create them with `crucible accounts user {email}`"
        if not await store.team_exists(team_id):
            return f"no team {team_id!r}"
        if remove:
            await store.remove_membership(found.user_id, team_id)
        else:
            await store.set_membership(found.user_id, team_id, Role[role], now=datetime.now(UTC))
        return None

    if problem := in_database(use):
        raise _fail(problem)
    typer.echo(f"{email} {'is out of' if remove else f'is {role} in'} {team_id}")


def _limit(text: str, option: str) -> int | None:
    if text in ("none", "unlimited"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise _fail(f"{option} is a number of runs (at least 1) or none")
    return int(text)


@accounts_app.command("quota")
def quota(
    team_id: Annotated[str, typer.Argument(help="The team.", show_default=False)],
    concurrent: Annotated[
        str, typer.Option("--concurrent", help="Runs going at once: a number, or none.", metavar="N")
    ],
    per_day: Annotated[
        str,
        typer.Option("--per-day", help="Runs started in 24 hours: a number, or none.", show_default=False),
    ],
) -> None:
    """Give a team quotas of its own, in place of the server's defaults."""
    from crucible.core.auth import AccountStore
    from crucible.core.quotas import Limits, QuotaStore

    limits = Limits(_limit(concurrent, "--concurrent"), _limit(per_day, "--per-day"))

    async def use(engine: AsyncEngine) -> str | None:
        if not await AccountStore(engine).team_exists(team_id):
            return f"no team {team_id!r}"
        await QuotaStore(engine, limits).set_limits(team_id, limits)
        return None

    if problem := in_database(use):
        raise _fail(problem)
    typer.echo(f"{team_id}: {concurrent} runs at once, {per_day} a day")
