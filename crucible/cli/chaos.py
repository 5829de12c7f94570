"""``crucible chaos``: create or import a chaos experiment and follow it to its verdict, review it,
abort it, show it and fetch its report."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from crucible.cli.api_calls import (
    EXIT_USAGE,
    CliApi,
    FollowOpt,
    JsonOpt,
    RunJsonOpt,
    file_option,
    follow_started,
)
from crucible.cli.chaos_view import (
    ChaosWatch,
    fault_text,
    latest_table,
    number,
    print_accepted,
    print_outcome,
    report_url,
    results_table,
    review_hints,
)
from crucible.cli.common import API, console, errors, fail, print_json
from crucible.cli.inputs import parse_pairs, read_document

chaos_app = typer.Typer(
    help="Chaos experiments: break something on purpose (a proxy fault, a process, a pod) while SLOs "
    "are watched; the fault is always rolled back and the recovery measured.",
    epilog="Exit codes: 0 the hypothesis was confirmed, 1 it was rejected or the experiment escalated, "
    "2 a usage error or an experiment the API refused as invalid, 3 the experiment could not run "
    "(blocked, postponed, aborted, failed, cancelled), a review step refused, or no API, 130 Ctrl-C.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

KIND = "chaos"
ExperimentArg = Annotated[str, typer.Argument(help="The experiment's run id, `chaos-…`.", show_default=False)]
CommentOpt = Annotated[
    str, typer.Option("--comment", help="Why, for the experiment's events.", metavar="TEXT")
]

#: Where an experiment waits for its review: an abort there ends it before anything runs.
REVIEW_STATES = ("Draft", "UnderReview", "ChangesRequested")
#: Import overrides that have an option of their own, by the field they fill.
IMPORT_OPTIONS = {"target": "--target", "duration_s": "--duration", "monitoring_interval_s": "--interval"}

_FOLLOW_HELP = """While the experiment runs, a line shows each state change (with its reason and who
made it), the pre-flight checks, each SLO sample (its value, `ok` or `BREACH`), and the fault
injected and rolled back; at the end, each SLO's baseline, worst value under chaos and recovery,
the verdict and the recovery time. An experiment created in `Draft` waits for its review
(`crucible chaos submit`, then `crucible chaos approve` by another admin of the team); following it waits
too, and prints those commands."""

_EXITS = """Exit codes: **0** `HypothesisConfirmed`, **1** `HypothesisRejected` or `Escalated` (a
rollback or recovery failed), **2** a usage error (including an experiment the API refused, each
field on a line), **3** the experiment could not run (`Blocked`, `Postponed`, aborted, failed or
cancelled) or the API refused or could not be reached, **130** Ctrl-C (the experiment goes on)."""

CREATE_HELP = f"""Create a chaos experiment from a file and follow it to its verdict.

The file holds the body of `POST /api/v1/chaos-experiments`: `name`, `target`, `fault`
(`provider` and `params`), `duration_s`, `slos`, and optionally `preflight`, `schedule`,
`steady_probes` and the timings.

{_FOLLOW_HELP}

{_EXITS}

Example: `crucible chaos create --file latency.yaml`
"""

IMPORT_HELP = f"""Import a Chaos Toolkit experiment, create it and follow it to its verdict.

Its steady-state hypothesis (HTTP and process probes), method and rollbacks are kept; what
Crucible cannot run is refused, each part named. What the file does not say comes from the
options: the target, the duration, the monitoring interval, and with `--override key=value` any
of `preflight`, `schedule`, `steady_probes`, `slos` (extra PromQL SLOs), `baseline_window_s`,
`recovery_timeout_s` and `created_by` (the value is read as JSON when it is JSON, else as text).

{_FOLLOW_HELP}

{_EXITS}

Example: `crucible chaos import --file experiment.json --target http://127.0.0.1:8080 --duration 60
--override 'preflight={{"alerts_query": ""}}'`
"""


@chaos_app.command("create", help=CREATE_HELP)
def create(
    file: Annotated[str, file_option("The experiment: `name`, `target`, `fault`, `duration_s`, `slos`, …")],
    follow_run: FollowOpt = True,
    as_json: RunJsonOpt = False,
) -> None:
    definition = read_document(file, "--file")
    with CliApi(what=f"the experiment in {file}", option_of=lambda loc: "--file") as api:
        accepted = api.call("POST", f"{API}/chaos-experiments", json=definition).json()
        _follow(api, accepted, follow_run=follow_run, as_json=as_json)


@chaos_app.command("import", help=IMPORT_HELP)
def import_experiment(
    file: Annotated[str, file_option("The Chaos Toolkit experiment")],
    target: Annotated[
        str | None, typer.Option(help="What is under test: a URL or a name.", metavar="TARGET")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="How long the fault stays in place.", metavar="SECONDS")
    ] = None,
    interval: Annotated[
        float | None, typer.Option(help="How often the SLOs are sampled.", metavar="SECONDS")
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(
            help="Another field, `key=value` (value as JSON, else text); repeatable.",
            metavar="KEY=VALUE",
            show_default=False,
        ),
    ] = None,
    follow_run: FollowOpt = True,
    as_json: RunJsonOpt = False,
) -> None:
    document = read_document(file, "--file")
    given = {"target": target, "duration_s": duration, "monitoring_interval_s": interval}
    overrides = {key: value for key, value in given.items() if value is not None}
    overrides |= parse_pairs(override or [], "--override", taken=overrides, own=IMPORT_OPTIONS)
    body = {"experiment": document, "overrides": overrides}
    with CliApi(what=f"the experiment in {file}", option_of=_import_option) as api:
        accepted = api.call("POST", f"{API}/chaos-experiments/import", json=body).json()
        _follow(api, accepted, follow_run=follow_run, as_json=as_json)


def _import_option(loc: Sequence[str]) -> str:
    """The option a refused field of the import came from; none for the overrides as a whole."""
    if loc[0] != "overrides":
        return "--file"
    return (IMPORT_OPTIONS.get(loc[1]) or f"--override {loc[1]}") if len(loc) > 1 else ""


def _follow(
    api: CliApi, accepted: dict[str, Any], *, follow_run: bool, as_json: bool, live_from: int = 0
) -> None:
    """Follow the experiment ``accepted`` describes to its end, then exit with its verdict's code."""
    run_id, state = accepted["run_id"], accepted["state"]
    if not follow_run and not as_json:
        print_accepted(console(), accepted, api.base)
        return
    out = errors() if as_json else console()
    watch = ChaosWatch(out, run_id, state, live_from=live_from)
    ended = follow_started(
        api,
        accepted,
        follow_run=follow_run,
        as_json=as_json,
        see=watch.see,
        stop_hints=[f"abort it:        crucible chaos abort {run_id}  (rolls back a fault in place)"],
    )
    if ended is not None:
        raise typer.Exit(print_outcome(out, *ended, report=report_url(api.base, run_id)))


def _review(name: str, run_id: str, comment: str, as_json: bool) -> dict[str, Any]:
    """Send a review step (``submit``, ``approve``, ``request-changes``, ``abort``) as the signed-in
    user; the API's answer, which says who that is (``by``)."""
    with CliApi(what=f"the {name}", option_of=lambda loc: f"--{loc[0]}") as api:
        answer: dict[str, Any] = api.call(
            "POST", f"{API}/chaos-experiments/{run_id}/{name}", json={"comment": comment}
        ).json()
    if as_json:
        print_json(answer)
    return answer


@chaos_app.command("submit")
def submit(run_id: ExperimentArg, comment: CommentOpt = "", as_json: JsonOpt = False) -> None:
    """Put an experiment in `Draft` (or `ChangesRequested`) up for review, as you.

    An admin of its team other than you must then approve it. An experiment in another state
    is refused (exit 3).

    Example: `crucible chaos submit chaos-5d0e… --comment "latency on checkout"`
    """
    by = _review("submit", run_id, comment, as_json)["by"]
    if not as_json:
        out = console()
        out.print(f"{run_id}: submitted for review by {escape(by)}")
        for hint in review_hints(run_id, "UnderReview", by):
            out.print(f"  {escape(hint)}", soft_wrap=True)


@chaos_app.command("approve")
def approve(run_id: ExperimentArg, comment: CommentOpt = "", as_json: JsonOpt = False) -> None:
    """Approve an experiment under review, as you: it then runs, now or at its scheduled time.

    Approving takes an admin of the experiment's team who did not submit it (refused, exit 3);
    an experiment not under review is refused too (exit 3).

    Example: `crucible chaos approve chaos-5d0e… --comment "go"`
    """
    by = _review("approve", run_id, comment, as_json)["by"]
    if not as_json:
        out = console()
        out.print(f"{run_id}: approved by {escape(by)}; it runs now, or at its scheduled time")
        out.print(f"  follow it:             crucible chaos watch {run_id}", soft_wrap=True)


@chaos_app.command("request-changes")
def request_changes(run_id: ExperimentArg, comment: CommentOpt = "", as_json: JsonOpt = False) -> None:
    """Send an experiment under review back (`ChangesRequested`); say why with `--comment`.

    Reviewing takes an admin of the experiment's team.

    Example: `crucible chaos request-changes chaos-5d0e… --comment "shorter, please"`
    """
    by = _review("request-changes", run_id, comment, as_json)["by"]
    if not as_json:
        out = console()
        out.print(f"{run_id}: changes requested by {escape(by)}")
        for hint in review_hints(run_id, "ChangesRequested"):
            out.print(f"  {escape(hint)}", soft_wrap=True)


@chaos_app.command("abort")
def abort(run_id: ExperimentArg, comment: CommentOpt = "", as_json: JsonOpt = False) -> None:
    """Abort an experiment: a fault in place is rolled back now, then the recovery is measured.

    Its verdict is `Inconclusive`; one aborted before it ran ends `Aborted`. Once the rollback
    has begun there is nothing left to abort (refused, exit 3).

    Example: `crucible chaos abort chaos-5d0e… --comment "checkout alarms"`
    """
    answer = _review("abort", run_id, comment, as_json)
    if not as_json:
        out = console()
        state = answer.get("state")
        then = "it ends without running" if state in REVIEW_STATES else "a fault in place is rolled back"
        out.print(f"{run_id}: abort sent in {state}; {then}")
        out.print(f"  follow it:             crucible chaos watch {run_id}", soft_wrap=True)


@chaos_app.command("watch")
def watch(run_id: ExperimentArg, as_json: RunJsonOpt = False) -> None:
    """Follow an experiment from its start (its events so far, then live) to its verdict.

    For one created with `--no-follow`, or after Ctrl-C. The lines and exit codes are those of
    `crucible chaos create`: **0** `HypothesisConfirmed`, **1** `HypothesisRejected` or
    `Escalated`, **3** it could not run, **130** Ctrl-C.

    Example: `crucible chaos watch chaos-5d0e…`
    """
    with CliApi(what="the request") as api:
        run: dict[str, Any] = api.call("GET", f"{API}/runs/{run_id}").json()
        if run["kind"] != KIND:
            fail(f"{run_id} is a {run['kind']} run, not a chaos experiment", EXIT_USAGE)
        accepted = {
            "run_id": run_id,
            "state": run.get("state"),
            "links": {"temporal_ui": run["temporal_ui_url"]},
        }
        _follow(api, accepted, follow_run=True, as_json=as_json, live_from=int(run.get("last_seq") or 0))


@chaos_app.command("show")
def show(run_id: ExperimentArg, as_json: JsonOpt = False) -> None:
    """Show an experiment: its fault, state and verdict, each SLO's results and the report's link.

    Until the results are in, the table shows each SLO's latest sample.

    Example: `crucible chaos show chaos-5d0e…`
    """
    with CliApi(what="the request") as api:
        found: dict[str, Any] = api.call("GET", f"{API}/chaos-experiments/{run_id}").json()
        base = api.base
    if as_json:
        print_json(found)
        return
    out = console()
    spec = found.get("experiment") or {}
    summary = found.get("summary") or {}
    out.print(f"{run_id}  [bold]{escape(str(spec.get('name')))}[/bold]", soft_wrap=True)
    out.print(f"target:    {escape(str(spec.get('target')))}", soft_wrap=True)
    duration, interval = spec.get("duration_s"), spec.get("monitoring_interval_s")
    fault = fault_text(spec.get("fault") or {})
    out.print(
        f"fault:     {escape(fault)} for {number(duration, 's')}, sampled every {number(interval, 's')}"
    )
    out.print(f"state:     {escape(str(found.get('state')))} ({found.get('status')})")
    if found.get("verdict"):
        out.print(f"verdict:   {escape(str(found['verdict']))}")
    if summary.get("reason"):
        out.print(f"reason:    {escape(str(summary['reason']))}")
    if summary.get("recovery_time_s") is not None:
        out.print(f"recovery:  {number(summary['recovery_time_s'], 's')} after the rollback")
    if found.get("results"):
        out.print()
        out.print(results_table(found["results"]))
    elif found.get("measurements"):
        out.print()
        out.print(latest_table(found["measurements"]))
    out.print(f"\nreport:    {report_url(base, run_id)}", soft_wrap=True)
    for hint in review_hints(
        run_id, str(found.get("state")), (found.get("progress") or {}).get("submitted_by")
    ):
        out.print(f"  {escape(hint)}", soft_wrap=True)


class ReportFormat(StrEnum):
    json = "json"
    junit = "junit"
    html = "html"


@chaos_app.command("report")
def report(
    run_id: ExperimentArg,
    format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="`json`, `junit` (XML for CI: a case per SLO, the rollback and the recovery) or "
            "`html` (a page with each SLO's values over time as a chart).",
        ),
    ] = ReportFormat.json,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write it to this file instead of standard output.", metavar="PATH"
        ),
    ] = None,
) -> None:
    """Fetch an experiment's report, for a person (`html`), for CI (`junit`) or for scripts (`json`).

    Example: `crucible chaos report chaos-5d0e… --format html --output chaos.html`
    """
    with CliApi(what="the request") as api:
        response = api.call("GET", f"{API}/runs/{run_id}/report", params={"format": format.value})
    if output is None:
        if format is ReportFormat.json:
            print_json(response.json())
        else:
            typer.echo(response.text, nl=not response.text.endswith("\n"))
        return
    try:
        output.write_bytes(response.content)
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {output}: {exc}", param_hint="--output") from None
    errors().print(f"wrote the {format.value} report of {run_id} to {escape(str(output))}", soft_wrap=True)
