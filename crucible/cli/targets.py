"""``crucible targets``: an operator sets each organisation's target policy, in the database.

It writes the database the settings name (``DATABASE_URL``, or the ``crucible dev`` stack's
through ``$CRUCIBLE_HOME/stack.env``), not through the API: who may call what is the
installation's business. Workers apply a change within 30 seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from crucible.cli.common import in_database

if TYPE_CHECKING:  # the database's modules load when a command runs, not with every CLI command
    from crucible.core.targets.orgs import OrgLists, OrgTargetPolicies

targets_app = typer.Typer(
    help="Which hosts, networks and ports each organisation's runs may call.", no_args_is_help=True
)

T = TypeVar("T")
OrgArg = Annotated[str, typer.Argument(help="The organisation's id, e.g. default.", show_default=False)]


def _with_policies(use: Callable[[OrgTargetPolicies], Awaitable[T]]) -> tuple[T, str]:
    """What ``use`` returns, run against the settings' database, and the installation's mode."""
    from crucible.core.config import load_settings
    from crucible.core.targets.orgs import OrgTargetPolicies
    from crucible.core.targets.stack import settings_mode

    settings = load_settings()
    found = in_database(lambda engine: use(OrgTargetPolicies(engine, settings, ttl_s=0)), settings)
    return found, settings_mode(settings).value


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _show(org_id: str, lists: OrgLists | None, mode: str) -> None:
    if lists is None:
        typer.echo(f"{org_id}: the installation's lists (CRUCIBLE_TARGET_*), {mode} mode")
        return
    typer.echo(f"{org_id}: its own lists, {mode} mode")
    for name, value in (("hosts", lists.hosts), ("networks", lists.networks), ("ports", lists.ports)):
        typer.echo(f"  {name:<9} {value or '-'}")
    typer.echo(f"  defaults  {'on' if lists.include_defaults else 'off'}")


@targets_app.command("set")
def set_policy(
    org_id: OrgArg,
    hosts: Annotated[str, typer.Option(help="Comma-separated host names (or addresses).")] = "",
    networks: Annotated[str, typer.Option(help="Comma-separated CIDR ranges.")] = "",
    ports: Annotated[str, typer.Option(help="Comma-separated ports; empty: any.")] = "",
    defaults: Annotated[
        bool, typer.Option("--defaults/--no-defaults", help="Also allow the mode's default addresses.")
    ] = True,
) -> None:
    """Give an organisation its own lists, in place of the installation's."""

    async def write(policies: OrgTargetPolicies) -> OrgLists | None:
        await policies.set_policy(
            org_id,
            hosts=_items(hosts),
            networks=_items(networks),
            ports=_items(ports),
            include_defaults=defaults,
        )
        return await policies.lists_of(org_id)

    from sqlalchemy.exc import IntegrityError

    try:
        lists, mode = _with_policies(write)
    except ValueError as exc:
        typer.echo(f"not set: {exc}", err=True)
        raise typer.Exit(2) from None
    except IntegrityError:
        typer.echo(f"not set: there is no organisation {org_id!r}", err=True)
        raise typer.Exit(1) from None
    _show(org_id, lists, mode)


@targets_app.command("show")
def show_policy(org_id: OrgArg) -> None:
    """Show the lists an organisation's runs are judged by."""
    lists, mode = _with_policies(lambda policies: policies.lists_of(org_id))
    _show(org_id, lists, mode)


@targets_app.command("clear")
def clear_policy(org_id: OrgArg) -> None:
    """Give an organisation the installation's lists again."""
    _, mode = _with_policies(lambda policies: policies.clear_policy(org_id))
    _show(org_id, None, mode)
