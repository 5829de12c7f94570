"""``crucible runs``: list, show, watch, cancel and signal runs through the API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from crucible.cli.common import (
    API,
    TERMINAL_EVENTS,
    Api,
    StreamLost,
    StreamRefused,
    console,
    detail,
    errors,
    fail,
    follow_events,
    print_json,
    short_time,
)

runs_app = typer.Typer(
    help="List, inspect, follow, cancel and signal runs.", no_args_is_help=True, rich_markup_mode="markdown"
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
RunArg = Annotated[str, typer.Argument(help="The run id, e.g. qa-3f2c….", show_default=False)]

#: Exit codes: 0 success, 1 the API refused (or the watched run did not complete), 2 no API.
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2


def _request(method: str, path: str, **kwargs: Any) -> Any:
    with Api(unreachable=EXIT_UNREACHABLE) as api:
        return _checked(api.send(method, path, **kwargs))


def _checked(response: httpx.Response) -> Any:
    if response.is_error:
        fail(f"{response.status_code}: {detail(response)}", EXIT_REFUSED)
    return response.json()


@runs_app.command("list")
def list_runs(
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind (qa, batch, …).")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Runs per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if kind:
        params["kind"] = kind
    if status:
        params["status"] = status.upper()
    if cursor:
        params["cursor"] = cursor
    page = _request("GET", f"{API}/runs", params=params)
    if as_json:
        print_json(page)
        return
    table = Table("RUN", "KIND", "STATUS", "STATE", "VERDICT", "CREATED (UTC)", box=None)
    for run in page["items"]:
        table.add_row(
            run["run_id"],
            run["kind"],
            run["status"],
            run["state"] or "",
            run["verdict"] or "",
            short_time(run["created_at"]),
        )
    console().print(table)
    if not page["items"]:
        console().print("no runs")
    if page["next_cursor"]:
        console().print(f"more: crucible runs list --cursor {page['next_cursor']}")


@runs_app.command("show")
def show_run(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Show a run's status, state, verdict and summary."""
    run = _request("GET", f"{API}/runs/{run_id}")
    if as_json:
        print_json(run)
        return
    table = Table(show_header=False, box=None)
    for key in ("run_id", "kind", "status", "state", "verdict", "org_id", "team_id"):
        table.add_row(key, str(run.get(key) or ""))
    for key in ("created_at", "updated_at", "closed_at"):
        table.add_row(key, short_time(run.get(key)))
    table.add_row("events", str(run["last_seq"]))
    table.add_row("web ui", run["temporal_ui_url"])
    console().print(table)
    if run["summary"]:
        console().print("summary:")
        console().print_json(data=run["summary"])


@runs_app.command("watch")
def watch_run(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Follow a run's events live until it ends.

    Exits 0 when the run completes, 1 when it fails or is cancelled. A dropped
    connection is resumed where it left off.
    """
    ending = None
    with Api(unreachable=EXIT_UNREACHABLE) as api:
        _checked(api.send("GET", f"{API}/runs/{run_id}"))  # a clear error for an unknown run
        try:
            for envelope in follow_events(api.client, run_id, notes=errors()):
                _print_event(envelope, as_json)
                ending = envelope["type"]
        except StreamRefused as exc:
            fail(str(exc), EXIT_REFUSED)
        except StreamLost as exc:
            fail(f"lost the event stream: {exc}", EXIT_UNREACHABLE)
    if ending not in TERMINAL_EVENTS:
        fail("the run ended without its terminal event", EXIT_REFUSED)
    raise typer.Exit(0 if ending == "COMPLETE" else EXIT_REFUSED)


def _print_event(envelope: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(envelope))
        return
    data = json.dumps(envelope["data"], separators=(",", ":")) if envelope["data"] else ""
    console().print(
        f"[dim]{envelope['seq']:>5}  {short_time(envelope['at'])[11:]}[/dim]  "
        f"[bold]{envelope['type']:<18}[/bold] {data}",
        highlight=False,
        soft_wrap=True,
    )


@runs_app.command("cancel")
def cancel_run(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Cancel a running run (its workflow cleans up and ends with CANCELLED)."""
    result = _request("POST", f"{API}/runs/{run_id}/cancel")
    if as_json:
        print_json(result)
    else:
        console().print(f"{run_id}: {result['detail']}")


@runs_app.command("signal")
def signal_run(
    run_id: RunArg,
    name: Annotated[str, typer.Argument(help="The signal, e.g. abort or approve.")],
    payload: Annotated[str | None, typer.Argument(help="The signal's argument as a JSON object.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a signal to a running run."""
    body = None
    if payload is not None:
        try:
            body = json.loads(payload)
        except json.JSONDecodeError as exc:
            fail(f"the payload is not JSON: {exc}", EXIT_REFUSED)
        if not isinstance(body, dict):
            fail("the payload must be a JSON object", EXIT_REFUSED)
    result = _request("POST", f"{API}/runs/{run_id}/signals/{name}", json=body)
    if as_json:
        print_json(result)
    else:
        console().print(f"{run_id}: {result['detail']}")
