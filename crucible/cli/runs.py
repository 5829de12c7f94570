"""``crucible runs``: list, show, watch, cancel and signal runs through the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

runs_app = typer.Typer(
    help="List, inspect, follow, cancel and signal runs.", no_args_is_help=True, rich_markup_mode="markdown"
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
RunArg = Annotated[str, typer.Argument(help="The run id, e.g. qa-3f2c….", show_default=False)]


def console() -> Console:
    return Console(highlight=False)


def errors() -> Console:
    return Console(stderr=True, highlight=False)


#: Exit codes: 0 success, 1 the API refused (or the watched run did not complete), 2 no API.
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2


def _api_url() -> str:
    from crucible.core.config import load_settings

    return load_settings().effective_api_url


def _fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    errors().print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(detail, list):  # validation errors: one line each
        return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail)
    return str(detail)


def _request(method: str, path: str, **kwargs: Any) -> Any:
    base = _api_url()
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        _fail(
            f"cannot reach the Crucible API at {base} ({exc}). "
            "Is `crucible dev` running? Set CRUCIBLE_API_URL to point elsewhere.",
            EXIT_UNREACHABLE,
        )
    if response.is_error:
        _fail(f"{response.status_code}: {_detail(response)}")
    return response.json()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


def _short_time(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else ""


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
    page = _request("GET", "/api/v1/runs", params=params)
    if as_json:
        _print_json(page)
        return
    table = Table("RUN", "KIND", "STATUS", "STATE", "VERDICT", "CREATED (UTC)", box=None)
    for run in page["items"]:
        table.add_row(
            run["run_id"],
            run["kind"],
            run["status"],
            run["state"] or "",
            run["verdict"] or "",
            _short_time(run["created_at"]),
        )
    console().print(table)
    if not page["items"]:
        console().print("no runs")
    if page["next_cursor"]:
        console().print(f"more: crucible runs list --cursor {page['next_cursor']}")


@runs_app.command("show")
def show_run(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Show a run's status, state, verdict and summary."""
    run = _request("GET", f"/api/v1/runs/{run_id}")
    if as_json:
        _print_json(run)
        return
    table = Table(show_header=False, box=None)
    for key in ("run_id", "kind", "status", "state", "verdict", "org_id", "team_id"):
        table.add_row(key, str(run.get(key) or ""))
    for key in ("created_at", "updated_at", "closed_at"):
        table.add_row(key, _short_time(run.get(key)))
    table.add_row("events", str(run["last_seq"]))
    table.add_row("web ui", run["temporal_ui_url"])
    console().print(table)
    if run["summary"]:
        console().print("summary:")
        console().print_json(data=run["summary"])


def _sse(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Server-Sent Events of a streaming response, as dicts of their fields."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields[name] = f"{fields[name]}\n{value}" if name in fields else value


@runs_app.command("watch")
def watch_run(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Follow a run's events live until it ends.

    Exits 0 when the run completes, 1 when it fails or is cancelled. A dropped
    connection is resumed where it left off.
    """
    base = _api_url()
    _request("GET", f"/api/v1/runs/{run_id}")  # a clear error for an unknown run
    last_seq = 0
    retries = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_seq:
            headers["Last-Event-ID"] = str(last_seq)
        try:
            with (
                httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=60)) as client,
                client.stream("GET", f"/api/v1/runs/{run_id}/events/stream", headers=headers) as r,
            ):
                if r.is_error:
                    r.read()
                    _fail(f"{r.status_code}: {_detail(r)}")
                for message in _sse(r):
                    envelope = json.loads(message["data"])
                    last_seq = envelope["seq"]
                    retries = 0
                    _print_event(envelope, as_json)
                    if envelope["type"] in ("COMPLETE", "FAILED", "CANCELLED"):
                        raise typer.Exit(0 if envelope["type"] == "COMPLETE" else EXIT_REFUSED)
        except httpx.TransportError as exc:
            retries += 1
            if retries > 10:
                _fail(f"lost the event stream: {exc}", EXIT_UNREACHABLE)
            errors().print(f"stream interrupted ({exc}); resuming after event {last_seq}…")
            time.sleep(min(retries, 5))


def _print_event(envelope: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(envelope))
        return
    data = json.dumps(envelope["data"], separators=(",", ":")) if envelope["data"] else ""
    console().print(
        f"[dim]{envelope['seq']:>5}  {_short_time(envelope['at'])[11:]}[/dim]  "
        f"[bold]{envelope['type']:<18}[/bold] {data}",
        highlight=False,
        soft_wrap=True,
    )


@runs_app.command("cancel")
def cancel_run(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Cancel a running run (its workflow cleans up and ends with CANCELLED)."""
    result = _request("POST", f"/api/v1/runs/{run_id}/cancel")
    if as_json:
        _print_json(result)
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
            _fail(f"the payload is not JSON: {exc}")
        if not isinstance(body, dict):
            _fail("the payload must be a JSON object")
    result = _request("POST", f"/api/v1/runs/{run_id}/signals/{name}", json=body)
    if as_json:
        _print_json(result)
    else:
        console().print(f"{run_id}: {result['detail']}")
