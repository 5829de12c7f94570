"""``crucible qa run``: start a QA package run, follow it live and report its verdict, for people and CI.

Exit codes, for pipelines: 0 the verdict is PASSED, 1 it is FAILED, 2 a usage error (a bad option,
a missing file, or input the API rejected), 3 the run itself failed or was cancelled, or the API
could not be reached or was unavailable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from crucible.cli.runs import _api_url, _detail, _print_json, _sse, console, errors

qa_app = typer.Typer(
    help="Test every operation of an OpenAPI spec against a live service.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

EXIT_PASSED = 0
EXIT_VERDICT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130

API = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30)
#: The API pings every 15 s, so a stream silent for longer than this has dropped.
STREAM_TIMEOUT = httpx.Timeout(30, read=60)
#: Consecutive dropped streams before giving up on the API.
MAX_RESUMES = 10
TERMINAL_EVENTS = ("COMPLETE", "FAILED", "CANCELLED")

#: Options not named after the field of the request body they fill, for the API's 422 errors.
RENAMED_FIELDS = {"spec_url": "spec", "headers": "header", "request_timeout_s": "request-timeout"}


class Generator(StrEnum):
    schema = "schema"
    llm = "llm"


def _opt(text: str, *names: str, **kwargs: Any) -> Any:
    return typer.Option(*names, help=text, show_default=False, **kwargs)


def _exit(message: str, code: int) -> NoReturn:
    errors().print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


class _Api:
    """One pooled client for the whole command; each refusal becomes the matching exit code."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base = _api_url()
        self.client = httpx.Client(base_url=self.base, timeout=DEFAULT_TIMEOUT, transport=transport)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            _exit(
                f"cannot reach the Crucible API at {self.base} ({exc}). "
                "Is `crucible dev` running? Set CRUCIBLE_API_URL to point elsewhere.",
                EXIT_RUN_FAILED,
            )
        if response.status_code == 422:
            _invalid(response)
        if response.is_error:
            _exit(f"{response.status_code} from {path}: {_detail(response)}", EXIT_RUN_FAILED)
        return response


def _invalid(response: httpx.Response) -> NoReturn:
    """Every error of a 422, each named by the option it came from."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        _exit(f"422: {response.text}", EXIT_USAGE)
    if not isinstance(detail, list):
        _exit(f"422: {detail}", EXIT_USAGE)
    out = errors()
    out.print("[red]error:[/red] the API refused the run:")
    for error in detail:
        loc = [str(part) for part in error.get("loc", []) if part != "body"]
        where = ".".join(loc) or "request"
        option = _option_of(loc) if loc else ""
        named = f"{option} ({where})" if option else where
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        out.print(f"  {escape(named)}: {escape(message)}")
    raise typer.Exit(EXIT_USAGE)


def _option_of(loc: list[str]) -> str:
    if loc[0] in ("include", "exclude") and len(loc) > 1:
        return f"--{loc[0]}-{loc[1].removesuffix('s')}"
    return "--" + RENAMED_FIELDS.get(loc[0], loc[0]).replace("_", "-")


def _read_text(path: str, option: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise typer.BadParameter(f"no such file: {path}", param_hint=option) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from None


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, colon, text = value.partition(":")
        name = name.strip()
        if not colon or not name or any(c.isspace() for c in name):
            raise typer.BadParameter(f'{value.split(":")[0]!r}…: give "Name: value"', param_hint="--header")
        if name.lower() in (n.lower() for n in headers):
            raise typer.BadParameter(f"{name} is given twice", param_hint="--header")
        headers[name] = text.strip()
    return headers


def _known_failures(path: str) -> list[str]:
    lines = (line.partition("#")[0].strip() for line in _read_text(path, "--known-failures").splitlines())
    return [line for line in lines if line]


class _Dropped(Exception):
    """The event stream ended or failed before the run's terminal event."""


def _follow(api: _Api, run_id: str, out: Console) -> Iterator[dict[str, Any]]:
    """The run's events up to its terminal one, over SSE; a dropped stream resumes after the last seen."""
    last_seq = drops = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_seq:
            headers["Last-Event-ID"] = str(last_seq)
        try:
            with api.client.stream(
                "GET", f"{API}/runs/{run_id}/events/stream", headers=headers, timeout=STREAM_TIMEOUT
            ) as response:
                if response.is_error:
                    response.read()
                    if response.status_code < 500:
                        _exit(f"{response.status_code}: {_detail(response)}", EXIT_RUN_FAILED)
                    raise _Dropped(f"{response.status_code}: {_detail(response)}")
                for message in _sse(response):
                    envelope = json.loads(message["data"])
                    if envelope["seq"] <= last_seq:
                        continue
                    last_seq, drops = envelope["seq"], 0
                    yield envelope
                    if envelope["type"] in TERMINAL_EVENTS:
                        return
            # A run Temporal ended without its terminal event in the log yet has no more to stream.
            run = api.client.get(f"{API}/runs/{run_id}")
            if run.is_success and run.json()["status"] != "RUNNING":
                return
            raise _Dropped("the stream ended early")
        except (httpx.TransportError, _Dropped) as exc:
            reason = str(exc) or type(exc).__name__
        drops += 1
        if drops > MAX_RESUMES:
            _exit(f"lost the run's event stream: {reason}", EXIT_RUN_FAILED)
        out.print(f"stream interrupted ({escape(reason)}); resuming after event {last_seq}…")
        time.sleep(min(drops, 5))


class _Watch:
    """The live view on stderr: operations done of the total, passed and failed."""

    def __init__(self, out: Console) -> None:
        self.live = out.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[passed]} passed[/green]  [red]{task.fields[failed]} failed[/red]"
            ),
            TimeElapsedColumn(),
            console=out,
            disable=not self.live,
        )
        self.task = self.progress.add_task("fetching the spec", total=None, passed=0, failed=0)
        self.total = self.passed = self.failed = 0
        self.ending: dict[str, Any] = {}
        self.llm_errors: set[str] = set()

    def see(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope["data"]
        say = self.progress.console.print
        if kind == "SPEC_FETCHED":
            self.total = int(data.get("operations") or 0)
            self.progress.update(self.task, total=self.total, description="testing")
            if not self.live:
                say(f"testing {self.total} operations of {escape(str(data.get('title') or 'the spec'))}")
        elif kind in ("EXECUTION_SUCCESS", "EXECUTION_FAILED"):
            passed = kind == "EXECUTION_SUCCESS"
            self.passed += passed
            self.failed += not passed
            self.progress.update(self.task, advance=1, passed=self.passed, failed=self.failed)
            done = f"{self.passed + self.failed}/{self.total}"
            operation = escape(str(data.get("operation")))
            if not passed:
                checks = ", ".join(data.get("failed_checks") or [])
                say(
                    f"[red]✗[/red] {operation}  [dim]{escape(checks)}[/dim]"
                    + ("" if self.live else f" ({done})")
                )
            elif not self.live:
                say(f"[green]✓[/green] {operation} ({done})")
        elif kind == "AI_FAILED" and str(data.get("reason")) not in self.llm_errors:  # each attempt, so once
            self.llm_errors.add(str(data.get("reason")))
            say(f"[yellow]the LLM failed:[/yellow] {escape(str(data.get('reason')))}")
        elif kind == "AI_FALLBACK":
            why = escape(str(data.get("reason")))
            say(f"[yellow]schema scenarios for[/yellow] {escape(str(data.get('operation')))}: {why}")
        elif kind == "QA_EVAL_DONE":
            self.progress.update(self.task, description="evaluated")
        elif kind == "SPEC_INVALID":
            say(f"[red]the spec is not usable:[/red] {escape(str(data.get('reason')))}")
        if kind in TERMINAL_EVENTS:
            self.ending = envelope


def _table(out: Console, report: dict[str, Any]) -> None:
    """Each operation's result and failed checks, failures first."""
    order = {"FAILED": 0, "NOT_RUN": 1, "PASSED": 2}
    endpoints = sorted(report.get("endpoints") or [], key=lambda e: order.get(e["status"], 3))
    if not endpoints:
        return
    table = Table("OPERATION", "RESULT", "FAILED CHECKS", box=None, pad_edge=False)
    table.columns[0].no_wrap = True
    for endpoint in endpoints:
        style = {"PASSED": "green", "FAILED": "red"}.get(endpoint["status"], "dim")
        table.add_row(
            escape(endpoint["operation"]),
            f"[{style}]{endpoint['status']}[/{style}]",
            escape("\n".join(_failure_lines(endpoint))),
        )
    out.print(table)


def _verdict(out: Console, report: dict[str, Any]) -> None:
    colour = "green" if report["verdict"] == "PASSED" else "red"
    rate, minimum = float(report.get("pass_rate") or 0), float(report.get("min_pass_rate") or 0)
    out.print(
        f"\n[bold {colour}]{report['verdict']}[/bold {colour}]  {report.get('passed')} of "
        f"{report.get('operations')} operations passed, pass rate {rate:.1%} (minimum {minimum:.0%})"
    )
    if report.get("known_failures_seen") or report.get("known_failures_fixed"):
        counts = [
            len(report.get(k) or []) for k in ("new_failures", "known_failures_seen", "known_failures_fixed")
        ]
        out.print("baseline: {} new failures, {} known, {} fixed".format(*counts))


def _links(out: Console, run_id: str, links: dict[str, str], base: str) -> None:
    out.print(f"run:      {run_id}")
    out.print(f"report:   {base}{links['report']}?format=html", soft_wrap=True)
    out.print(f"temporal: {links['temporal_ui']}", soft_wrap=True)


def _failure_lines(endpoint: dict[str, Any], most: int = 4) -> list[str]:
    """One line per distinct check and JSON path, with the first message seen for it."""
    seen: dict[tuple[str, str | None], str] = {}
    for failure in endpoint.get("failures") or []:
        seen.setdefault((failure["check"], failure.get("path")), str(failure.get("message") or ""))
    lines = [
        f"{check}{f' at {path}' if path else ''}: {message[:120]}" for (check, path), message in seen.items()
    ]
    if endpoint["status"] == "PASSED" and lines:  # every failure is in the known-failures baseline
        lines = [f"(known) {line}" for line in lines]
    return lines[:most] + ([f"… {len(lines) - most} more"] if len(lines) > most else [])


@qa_app.command("run")
def run(
    base_url: Annotated[str, _opt("The service under test, e.g. `http://127.0.0.1:8080`.", metavar="URL")],
    spec: Annotated[
        str | None,
        _opt(
            "The OpenAPI or Swagger document: an `http(s)://` URL the worker fetches, or a local "
            "JSON or YAML file sent with the request (`-` reads standard input).",
            metavar="URL|FILE",
        ),
    ] = None,
    generator: Annotated[
        Generator,
        typer.Option(help="Who writes the scenarios: `schema` (from the spec) or `llm`.", show_default=True),
    ] = Generator.schema,
    concurrency: Annotated[
        int | None, _opt("Requests in flight at once (default 8).", min=1, max=256, metavar="N")
    ] = None,
    include_tag: Annotated[
        list[str] | None, _opt("Test only operations with this tag. Repeatable.", metavar="TAG")
    ] = None,
    exclude_tag: Annotated[
        list[str] | None, _opt("Skip operations with this tag. Repeatable.", metavar="TAG")
    ] = None,
    include_path: Annotated[
        list[str] | None,
        _opt("Test only paths matching this regular expression. Repeatable.", metavar="REGEX"),
    ] = None,
    exclude_path: Annotated[
        list[str] | None, _opt("Skip paths matching this regular expression. Repeatable.", metavar="REGEX")
    ] = None,
    include_method: Annotated[
        list[str] | None, _opt("Test only this HTTP method, e.g. `GET`. Repeatable.", metavar="METHOD")
    ] = None,
    exclude_method: Annotated[
        list[str] | None, _opt("Skip this HTTP method. Repeatable.", metavar="METHOD")
    ] = None,
    header: Annotated[
        list[str] | None,
        _opt(
            'Send `"Name: value"` with every request to the target, e.g. for auth. Repeatable. '
            "Values are stored encrypted and never shown; only the names are.",
            metavar="'NAME: VALUE'",
        ),
    ] = None,
    min_pass_rate: Annotated[
        float | None,
        _opt("Fraction of operations that must pass for PASSED (default 1.0).", min=0, max=1, metavar="RATE"),
    ] = None,
    request_timeout: Annotated[
        float | None, _opt("Seconds each request to the target may take (default 10).", metavar="SECONDS")
    ] = None,
    max_response_time_ms: Annotated[
        float | None, _opt("Responses slower than this many milliseconds fail a check.", metavar="MS")
    ] = None,
    seed: Annotated[
        int | None,
        _opt("The schema generator makes the same scenarios for a seed (default 0).", min=0, metavar="N"),
    ] = None,
    known_failures: Annotated[
        str | None,
        _opt(
            "A baseline file: one `METHOD /path check` per line, `#` starts a comment. "
            "The failures it lists do not fail their operation.",
            metavar="FILE",
        ),
    ] = None,
    replay_of: Annotated[
        str | None,
        _opt(
            "Replay the scenarios of this earlier QA run (and its spec, unless `--spec`).", metavar="RUN_ID"
        ),
    ] = None,
    follow_redirects: Annotated[
        bool, _opt("Follow redirects from the target.", "--follow-redirects")
    ] = False,
    junit: Annotated[
        Path | None,
        _opt(
            "Write the JUnit XML report to this file when the run ends, for CI.",
            dir_okay=False,
            metavar="FILE",
        ),
    ] = None,
    no_wait: Annotated[
        bool, _opt("Print the run id and return at once; the run goes on.", "--no-wait")
    ] = False,
    as_json: Annotated[
        bool,
        _opt(
            'Print the final JSON report on stdout (`{"run_id": …}` with `--no-wait`); '
            "progress and the summary go to stderr.",
            "--json",
        ),
    ] = False,
) -> None:
    """Start a QA package run, follow it live and print its verdict.

    Every operation of the spec gets scenarios, is called on `--base-url` and its responses are
    checked against the spec. A progress bar shows on stderr while the run goes on; at the end a
    table lists each operation's result and failed checks, with the report and Temporal UI links.

    Exit codes: **0** the verdict is PASSED, **1** it is FAILED, **2** a usage error (including
    input the API refused), **3** the run failed or was cancelled, or the API could not be reached.

    Example: `crucible qa run --spec openapi.yaml --base-url http://127.0.0.1:8080 --junit qa.xml`
    """
    body: dict[str, Any] = {
        "base_url": base_url,
        "generator": generator.value,
        "follow_redirects": follow_redirects,
    }
    if junit is not None and no_wait:
        raise typer.BadParameter(
            "the report is written when the run ends; drop --no-wait", param_hint="--junit"
        )
    if junit is not None and not junit.parent.is_dir():
        raise typer.BadParameter(f"no such directory: {junit.parent}", param_hint="--junit")
    if spec is None and replay_of is None:
        raise typer.BadParameter(
            "give the spec (a URL or a file), or --replay-of an earlier run", param_hint="--spec"
        )
    if spec is not None and spec.lower().startswith(("http://", "https://")):
        body["spec_url"] = spec
    elif spec is not None:
        body["spec"] = _read_text(spec, "--spec")
    if header:
        body["headers"] = _headers(header)
    if known_failures is not None:
        body["known_failures"] = _known_failures(known_failures)
    for name, given in {
        "include": (include_tag, include_path, include_method),
        "exclude": (exclude_tag, exclude_path, exclude_method),
    }.items():
        chosen = {k: v for k, v in zip(("tags", "paths", "methods"), given, strict=True) if v}
        if chosen:
            body[name] = chosen
    optional = {
        "concurrency": concurrency,
        "min_pass_rate": min_pass_rate,
        "request_timeout_s": request_timeout,
        "max_response_time_ms": max_response_time_ms,
        "seed": seed,
        "replay_of": replay_of,
    }
    body.update({k: v for k, v in optional.items() if v is not None})

    api = _Api()
    accepted = api.call("POST", f"{API}/qa-runs", json=body).json()
    run_id, links = accepted["run_id"], accepted["links"]
    if no_wait:
        if as_json:
            _print_json(accepted)
        else:
            typer.echo(run_id)
        return

    err = errors()
    err.print(f"started {run_id}  [dim]{links['temporal_ui']}[/dim]", soft_wrap=True)
    watch = _Watch(err)
    try:
        with watch.progress:
            for envelope in _follow(api, run_id, err):
                watch.see(envelope)
    except KeyboardInterrupt:
        err.print(f"\nstopped following; {run_id} goes on: `crucible runs watch {run_id}` or `… cancel`")
        raise typer.Exit(EXIT_INTERRUPTED) from None

    report = api.call("GET", links["report"], params={"format": "json"}).json()
    if junit is not None:
        junit.write_text(api.call("GET", links["report"], params={"format": "junit"}).text, encoding="utf-8")
    if as_json:
        _print_json(report)
    out = err if as_json else console()
    _table(out, report)
    ending = watch.ending.get("type") or ("COMPLETE" if report.get("status") == "COMPLETED" else None)
    if ending == "COMPLETE" and report.get("verdict") in ("PASSED", "FAILED"):
        _verdict(out, report)
    _links(out, run_id, links, api.base)
    if junit is not None:
        out.print(f"junit:    {escape(str(junit))}")
    if ending != "COMPLETE" or report.get("verdict") not in ("PASSED", "FAILED"):
        data = watch.ending.get("data") or {}
        why = (
            data.get("message") or data.get("reason") or f"it ended {report.get('status')} without a verdict"
        )
        _exit(f"the run {str(ending or report.get('status')).lower()}: {why}", EXIT_RUN_FAILED)
    raise typer.Exit(EXIT_PASSED if report["verdict"] == "PASSED" else EXIT_VERDICT_FAILED)
