"""``crucible qa run``: start a QA package run, follow it live and report its verdict, for people and CI."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from crucible.cli.api_calls import EXIT_FAILED, EXIT_INTERRUPTED, fail_invalid, follow
from crucible.cli.common import API, Api, console, detail, errors, fail, print_json
from crucible.cli.inputs import parse_headers, read_text
from crucible.cli.qa_view import Watch, print_links, print_table, print_verdict

qa_app = typer.Typer(
    help="Test every operation of an OpenAPI spec against a live service.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

#: The verdict's exit codes; the others (2 a usage error, 3 the run failed, 130 Ctrl-C) are in ``api_calls``.
EXIT_PASSED = 0
EXIT_VERDICT_FAILED = 1

#: Options not named after the field of the request body they fill, for the API's 422 errors.
RENAMED_FIELDS = {"spec_url": "spec", "headers": "header", "request_timeout_s": "request-timeout"}


class Generator(StrEnum):
    schema = "schema"
    llm = "llm"


def _opt(text: str, *names: str, **kwargs: Any) -> Any:
    return typer.Option(*names, help=text, show_default=False, **kwargs)


class _Api(Api):
    """The API for ``qa run``: each refusal becomes the matching exit code."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(unreachable=EXIT_FAILED, transport=transport)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.send(method, path, **kwargs)
        if response.status_code == 422:
            fail_invalid(response, what="the run", option_of=_option_of)
        if response.is_error:
            fail(f"{response.status_code} from {path}: {detail(response)}", EXIT_FAILED)
        return response


def _option_of(loc: Sequence[str]) -> str:
    if loc[0] in ("include", "exclude") and len(loc) > 1:
        return f"--{loc[0]}-{loc[1].removesuffix('s')}"
    return "--" + RENAMED_FIELDS.get(loc[0], loc[0]).replace("_", "-")


def _known_failures(path: str) -> list[str]:
    lines = (line.partition("#")[0].strip() for line in read_text(path, "--known-failures").splitlines())
    return [line for line in lines if line]


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
        body["spec"] = read_text(spec, "--spec")
    if header:
        body["headers"] = parse_headers(header)
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
            print_json(accepted)
        else:
            typer.echo(run_id)
        return

    err = errors()
    err.print(f"started {run_id}  [dim]{links['temporal_ui']}[/dim]", soft_wrap=True)
    watch = Watch(err)
    try:
        with watch.progress:
            for envelope in follow(api, run_id, err):
                watch.see(envelope)
    except KeyboardInterrupt:
        err.print(f"\nstopped following; {run_id} goes on: `crucible runs watch {run_id}` or `… cancel`")
        raise typer.Exit(EXIT_INTERRUPTED) from None

    report = api.call("GET", links["report"], params={"format": "json"}).json()
    if junit is not None:
        junit.write_text(api.call("GET", links["report"], params={"format": "junit"}).text, encoding="utf-8")
    if as_json:
        print_json(report)
    out = err if as_json else console()
    print_table(out, report)
    ending = watch.ending.get("type") or ("COMPLETE" if report.get("status") == "COMPLETED" else None)
    if ending == "COMPLETE" and report.get("verdict") in ("PASSED", "FAILED"):
        print_verdict(out, report)
    print_links(out, run_id, links, api.base)
    if junit is not None:
        out.print(f"junit:    {escape(str(junit))}")
    if ending != "COMPLETE" or report.get("verdict") not in ("PASSED", "FAILED"):
        data = watch.ending.get("data") or {}
        why = (
            data.get("message") or data.get("reason") or f"it ended {report.get('status')} without a verdict"
        )
        fail(f"the run {str(ending or report.get('status')).lower()}: {why}", EXIT_FAILED)
    raise typer.Exit(EXIT_PASSED if report["verdict"] == "PASSED" else EXIT_VERDICT_FAILED)
