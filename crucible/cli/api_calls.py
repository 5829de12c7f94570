"""How the batch, pipeline, schedule, QA and saga commands call the API and end on its answer.

One exit code per outcome, the API's refusals (a 422 listed a line per field, named by the
option it came from), the ``--json`` and ``--follow`` options, and following a run they
started to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, NoReturn, Self

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from crucible.cli.common import (
    API,
    TERMINAL_EVENTS,
    Api,
    StreamLost,
    StreamRefused,
    detail,
    errors,
    fail,
    follow_events,
    print_json,
)

#: The exit codes of the batch, pipeline, schedule, QA and saga commands.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130

#: The option a request field came from, given the field's location without ``body``.
OptionOf = Callable[[Sequence[str]], str]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
RunJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the ended run as JSON on stdout (with `--no-follow`, its id and links); "
        "progress goes to stderr.",
    ),
]
FollowOpt = Annotated[
    bool,
    typer.Option(
        "--follow/--no-follow",
        help="Follow the run's events until it ends (`--no-follow`: print its id and return).",
    ),
]


def file_option(what: str) -> Any:
    """``--file``/``-f``: a JSON or YAML document that is the request's body; ``what`` says what it holds."""
    return typer.Option(
        "--file",
        "-f",
        help=f"{what}, as JSON or YAML (`-` reads standard input).",
        metavar="FILE",
        show_default=False,
    )


def options_named(renamed: Mapping[str, str]) -> OptionOf:
    """Fields named ``--field-name``, but for those ``renamed`` gives an option of their own."""

    def option_of(loc: Sequence[str]) -> str:
        return renamed.get(loc[0]) or "--" + loc[0].replace("_", "-")

    return option_of


def fail_invalid(response: httpx.Response, *, what: str, option_of: OptionOf) -> NoReturn:
    """Print every error of a 422, each named by the option it came from; exit ``EXIT_USAGE``.

    Args:
        response: the API's 422.
        what: what the API refused, e.g. ``the batch job``.
        option_of: the option each field of the request body came from.
    """
    try:
        problems = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        fail(f"422: {response.text}", EXIT_USAGE)
    if not isinstance(problems, list):
        fail(f"422: {problems}", EXIT_USAGE)
    out = errors()
    out.print(f"[red]error:[/red] the API refused {escape(what)}:")
    for error in problems:
        loc = [str(part) for part in error.get("loc", [])]
        in_body = bool(loc) and loc[0] == "body"
        loc = loc[1:] if in_body or loc[:1] in (["query"], ["path"]) else loc
        where = ".".join(loc) or "request"
        option = option_of(loc) if in_body and loc else ""
        named = f"{option} ({where})" if option else where
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        out.print(f"  {escape(named)}: {escape(message)}")
    raise typer.Exit(EXIT_USAGE)


class CliApi(Api):
    """The API for the batch, pipeline and schedule commands.

    A 422 exits ``EXIT_USAGE`` with a line per wrong field; any other refusal, or an API out
    of reach, exits ``EXIT_FAILED``.

    Args:
        what: what a 422 refused, e.g. ``the batch job``.
        option_of: the option each field of the request body came from.
    """

    def __init__(
        self,
        *,
        what: str = "the request",
        option_of: OptionOf = options_named({}),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(unreachable=EXIT_FAILED, transport=transport)
        self.what = what
        self.option_of = option_of

    def __enter__(self) -> Self:
        return self

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.send(method, path, **kwargs)
        if response.status_code == 422:
            fail_invalid(response, what=self.what, option_of=self.option_of)
        if response.is_error:
            fail(f"{response.status_code} from {method} {path}: {detail(response)}", EXIT_FAILED)
        return response


def answer(
    method: str, path: str, *, as_json: bool, api: CliApi | None = None, **kwargs: Any
) -> dict[str, Any] | None:
    """The API's answer to one request, or None once it is printed as JSON for ``--json``."""
    with api or CliApi() as client:
        body: dict[str, Any] = client.call(method, path, **kwargs).json()
    if as_json:
        print_json(body)
        return None
    return body


def follow(api: Api, run_id: str, notes: Console) -> Iterator[dict[str, Any]]:
    """The run's events up to its terminal one; a stream refused or lost exits ``EXIT_FAILED``."""
    try:
        yield from follow_events(api.client, run_id, notes=notes)
    except StreamRefused as exc:
        fail(str(exc), EXIT_FAILED)
    except StreamLost as exc:
        fail(f"lost the run's event stream: {exc}", EXIT_FAILED)


def follow_started(
    api: CliApi,
    accepted: dict[str, Any],
    *,
    follow_run: bool,
    as_json: bool,
    see: Callable[[dict[str, Any]], None],
    stop_hints: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Follow a run the API started, each event to ``see``: the run's record and the data of its
    terminal event once it ends, also printed as JSON for ``--json``.

    Without ``follow_run`` it prints the run's id (its links too for ``--json``) and returns None.
    On Ctrl-C it says how to follow or cancel the run, then the ``stop_hints`` (other ways to
    stop it), and exits ``EXIT_INTERRUPTED``.
    """
    run_id = accepted["run_id"]
    if not follow_run:
        if as_json:
            print_json(accepted)
        else:
            typer.echo(run_id)
        return None
    err = errors()
    resumed = f" (resuming {accepted['resumed_from']})" if accepted.get("resumed_from") else ""
    err.print(f"started {run_id}{resumed}  [dim]{accepted['links']['temporal_ui']}[/dim]", soft_wrap=True)
    ending: dict[str, Any] = {}
    try:
        for envelope in follow(api, run_id, err):
            see(envelope)
            ending = envelope if envelope["type"] in TERMINAL_EVENTS else ending
    except KeyboardInterrupt:
        err.print(f"\nstopped following; {run_id} goes on", soft_wrap=True)
        err.print(f"follow it again: crucible runs watch {run_id}", soft_wrap=True)
        err.print(f"cancel it:       crucible runs cancel {run_id}", soft_wrap=True)
        for hint in stop_hints:
            err.print(escape(hint), soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    run: dict[str, Any] = api.call("GET", f"{API}/runs/{run_id}").json()
    result = ending.get("data") or {}
    if as_json:
        print_json({**run, "result": result})
    return run, result
