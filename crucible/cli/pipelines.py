"""``crucible pipelines``: define, list, show, delete and run pipelines of batch, check and notify steps."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crucible.cli.api_calls import EXIT_FAILED, CliApi, FollowOpt, JsonOpt, RunJsonOpt, answer, follow_started
from crucible.cli.common import API, console, errors, fail, short_time
from crucible.cli.inputs import absolute_job, folder_of, read_document

pipelines_app = typer.Typer(
    help="Define pipelines (a batch job, checks on its result, a notification) and run them.",
    epilog="Exit codes: 0 done, 2 a usage error or a request the API refused as invalid, "
    "3 any other refusal, an API out of reach, or a followed run that failed.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

PipelineArg = Annotated[str, typer.Argument(help="The pipeline's id, `pl-…`.", show_default=False)]


@pipelines_app.command("create")
def create(
    file: Annotated[
        str,
        typer.Option(
            "--file",
            "-f",
            help="The pipeline as JSON or YAML: `name` and `steps` (`-` reads standard input).",
            metavar="FILE",
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Define a pipeline from a file and print its id.

    The file holds the body of `POST /api/v1/pipelines` (see docs/batch.md). Relative
    `input` and `output` paths of its batch steps are made absolute from the file's folder,
    since the workers need absolute paths.

    Example: `crucible pipelines create --file nightly.yaml`, with nightly.yaml:

        name: nightly anomalies
        steps:
          - {type: batch, job: {input: rows.csv, processor: anomaly-detection, output: flagged.jsonl}}
          - {type: validate, assertions: [{path: summary.flagged, op: "<=", value: 500}]}
    """
    definition = read_document(file, "--file")
    base = folder_of(file)
    steps = definition.get("steps")
    if isinstance(steps, list):
        definition["steps"] = [
            {**step, "job": absolute_job(step["job"], base)}
            if isinstance(step, dict) and "job" in step
            else step
            for step in steps
        ]
    api = CliApi(what=f"the pipeline in {file}", option_of=lambda loc: "--file")
    pipeline = answer("POST", f"{API}/pipelines", json=definition, as_json=as_json, api=api)
    if pipeline is None:
        return
    out = console()
    out.print(
        f"created {pipeline['pipeline_id']} ({escape(pipeline['name'])}), {len(pipeline['steps'])} steps"
    )
    out.print(f"run it with `crucible pipelines run {pipeline['pipeline_id']}`")


@pipelines_app.command("list")
def list_pipelines(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Pipelines per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List pipelines, newest first.

    Example: `crucible pipelines list --json`
    """
    params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    page = answer("GET", f"{API}/pipelines", params=params, as_json=as_json)
    if page is None:
        return
    out = console()
    table = Table("PIPELINE", "NAME", "STEPS", "CREATED (UTC)", box=None)
    for pipeline in page["items"]:
        steps = " → ".join(step["type"] for step in pipeline["steps"])
        table.add_row(
            pipeline["pipeline_id"], escape(pipeline["name"]), steps, short_time(pipeline["created_at"])
        )
    out.print(table if page["items"] else "no pipelines")
    if page["next_cursor"]:
        out.print(f"more: crucible pipelines list --cursor {page['next_cursor']}")


@pipelines_app.command("show")
def show(pipeline_id: PipelineArg, as_json: JsonOpt = False) -> None:
    """Show a pipeline's steps.

    Example: `crucible pipelines show pl-nightly-anomalies-3f2c1a`
    """
    pipeline = answer("GET", f"{API}/pipelines/{pipeline_id}", as_json=as_json)
    if pipeline is None:
        return
    out = console()
    created = short_time(pipeline["created_at"])
    out.print(f"{pipeline['pipeline_id']}: {escape(pipeline['name'])}, created {created} UTC")
    table = Table("#", "STEP", "TYPE", "WHAT", box=None)
    for index, step in enumerate(pipeline["steps"], start=1):
        table.add_row(str(index), escape(step["name"]), step["type"], escape(_what(step)))
    out.print(table)


def _what(step: dict[str, Any]) -> str:
    if step["type"] == "batch":
        job = step.get("job") or {}
        return f"{job.get('processor')}: {job.get('input')} → {job.get('output')}"
    if step["type"] == "validate":
        return "; ".join(
            f"{a['path']} {a['op']}"
            + ("" if a["op"] in ("exists", "missing") else f" {json.dumps(a['value'])}")
            for a in step.get("assertions") or []
        )
    return f"webhook at {step.get('webhook_host')}"


@pipelines_app.command("delete")
def delete(pipeline_id: PipelineArg) -> None:
    """Delete a pipeline. Runs already started go on; schedules that run it fail from then on.

    Example: `crucible pipelines delete pl-nightly-anomalies-3f2c1a`
    """
    with CliApi() as api:
        api.call("DELETE", f"{API}/pipelines/{pipeline_id}")
    console().print(f"deleted {pipeline_id}")


@pipelines_app.command("run")
def run(pipeline_id: PipelineArg, follow_run: FollowOpt = True, as_json: RunJsonOpt = False) -> None:
    """Run a pipeline now and follow its steps to the end.

    A line per step shows it starting (with the id of its child run, for `crucible runs
    watch`), completing or failing. Exits 0 when the run completes, 3 when a step fails or
    the run is cancelled, 130 on Ctrl-C (the run goes on).

    Example: `crucible pipelines run pl-nightly-anomalies-3f2c1a`
    """
    out = errors() if as_json else console()
    with CliApi() as api:
        accepted = api.call("POST", f"{API}/pipelines/{pipeline_id}/runs").json()
        ended = follow_started(
            api, accepted, follow_run=follow_run, as_json=as_json, see=lambda event: _print_step(out, event)
        )
    if ended is None:
        return
    record, result = ended
    if record["status"] != "COMPLETED":
        why = result.get("message") or result.get("reason") or "no reason given"
        fail(f"the pipeline run {record['status'].lower()}: {why}", EXIT_FAILED)
    out.print(f"[green]COMPLETED[/green]  {record['run_id']}")


def _print_step(out: Console, envelope: dict[str, Any]) -> None:
    kind, data = envelope["type"], envelope.get("data") or {}
    step = f"step {data.get('index')} {escape(str(data.get('step')))}"
    if kind == "REQUESTED":
        out.print(f"running {escape(str(data.get('name')))}: {len(data.get('steps') or [])} steps")
    elif kind == "STEP_STARTED":
        out.print(f"▶ {step} ({data.get('type')})  [dim]{data.get('child_id')}[/dim]", soft_wrap=True)
    elif kind == "STEP_COMPLETED":
        out.print(f"[green]✓[/green] {step}{escape(_outcome(data.get('result') or {}))}", soft_wrap=True)
    elif kind == "STEP_FAILED":
        out.print(f"[red]✗[/red] {step}: {escape(str(data.get('reason')))}", soft_wrap=True)


def _outcome(result: dict[str, Any]) -> str:
    if "records" in result:  # a batch job's result
        failed = len(result.get("failed_chunks") or [])
        skipped = f", {failed} chunks skipped" if failed else ""
        return f": {result['records']:,} records, {result.get('output_lines', 0):,} output lines{skipped}"
    return ""
