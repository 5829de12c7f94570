"""``crucible schedules``: Temporal Schedules that start pipelines, batch jobs and QA runs."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crucible.cli.api_calls import CliApi, JsonOpt, answer, options_named
from crucible.cli.common import API, console, short_time
from crucible.cli.inputs import absolute_job, folder_of, read_document

schedules_app = typer.Typer(
    help="Start pipelines, batch jobs and QA runs on a cron expression or an interval (Temporal Schedules).",
    epilog="Exit codes: 0 done, 2 a usage error or a request the API refused as invalid, "
    "3 any other refusal (an unknown id, a taken name) or an API out of reach.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ScheduleArg = Annotated[
    str, typer.Argument(help="The schedule's id, e.g. `nightly-orders`.", show_default=False)
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Overlap(StrEnum):
    skip = "skip"
    buffer_one = "buffer_one"
    buffer_all = "buffer_all"
    cancel_other = "cancel_other"
    terminate_other = "terminate_other"
    allow_all = "allow_all"


OverlapOpt = Annotated[
    Overlap | None,
    typer.Option(help="What happens when an action comes while a run started before is going."),
]


def parse_every(text: str) -> int:
    """Seconds in a duration like ``10s``, ``5m``, ``1h`` or ``1h30m``."""
    compact = text.replace(" ", "").lower()
    if not re.fullmatch(r"(\d+[smhd])+", compact):
        raise typer.BadParameter(f"{text!r}: give a duration like 10s, 5m, 1h or 1h30m", param_hint="--every")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)([smhd])", compact))
    if seconds < 1:
        raise typer.BadParameter("at least 1s", param_hint="--every")
    return seconds


def every_text(seconds: int) -> str:
    parts = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _timing(schedule: dict[str, Any]) -> str:
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({schedule.get('time_zone') or 'UTC'})"
    return f"every {every_text(schedule['interval_s'])}" if schedule.get("interval_s") else ""


def _target(target: dict[str, Any]) -> str:
    kind = target.get("kind")
    if kind == "pipeline":
        return f"pipeline {target.get('pipeline_id')}"
    if kind == "batch":
        return f"batch {target.get('processor')} {target.get('input')}"
    if kind == "qa":
        return f"qa {target.get('base_url')}"
    return json.dumps(target)


def _print_changed(schedule: dict[str, Any] | None, done: str) -> None:
    if schedule is None:
        return
    note = f" ({escape(schedule['note'])})" if schedule.get("note") else ""
    console().print(f"{schedule['schedule_id']}: {done}{note}")


@schedules_app.command("create")
def create(
    name: Annotated[
        str,
        typer.Option(
            help="Becomes the id, slugified: `Nightly orders` → `nightly-orders`.", show_default=False
        ),
    ],
    cron: Annotated[
        str | None,
        typer.Option(
            help="A 5-field cron expression or @hourly, @daily…, read in `--time-zone`.", metavar="EXPR"
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="Act at this interval instead: 10s, 5m, 1h, 1h30m, 1d.", metavar="DURATION"),
    ] = None,
    time_zone: Annotated[
        str | None, typer.Option(help="The IANA time zone of `--cron` (default UTC).")
    ] = None,
    overlap: OverlapOpt = None,
    pause_on_failure: Annotated[
        bool, typer.Option("--pause-on-failure", help="Pause the schedule when a run it started fails.")
    ] = False,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    note: Annotated[str | None, typer.Option(help="Shown with the schedule's state.")] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Run this pipeline (`pl-…`).", metavar="ID", show_default=False)
    ] = None,
    batch_file: Annotated[
        str | None,
        typer.Option(
            help="Start this batch job: a JSON or YAML file with the body of `POST /api/v1/batch-jobs`; "
            "relative `input` and `output` paths are made absolute from the file's folder.",
            metavar="FILE",
        ),
    ] = None,
    qa_file: Annotated[
        str | None,
        typer.Option(
            help="Start this QA run: a JSON or YAML file with the body of `POST /api/v1/qa-runs`.",
            metavar="FILE",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule that starts a pipeline, a batch job or a QA run.

    Give the timing (`--cron` or `--every`) and one target (`--pipeline`, `--batch-file` or
    `--qa-file`). Runs it starts are named `<kind>-<schedule id>-<action time>`.

    Example: `crucible schedules create --name "nightly anomalies" --cron "17 3 * * *"
    --time-zone Europe/Paris --pipeline pl-nightly-anomalies-3f2c1a`
    """
    chosen = {
        option: value
        for option, value in {
            "--pipeline": pipeline,
            "--batch-file": batch_file,
            "--qa-file": qa_file,
        }.items()
        if value is not None
    }
    if len(chosen) != 1:
        raise typer.BadParameter(
            "give exactly one of --pipeline, --batch-file or --qa-file", param_hint="--pipeline"
        )
    if (cron is None) == (every is None):
        raise typer.BadParameter("give either --cron or --every", param_hint="--cron")
    (target_option,) = chosen
    if pipeline is not None:
        target: dict[str, Any] = {"kind": "pipeline", "pipeline_id": pipeline}
    elif batch_file is not None:
        job = absolute_job(read_document(batch_file, "--batch-file"), folder_of(batch_file))
        target = {"kind": "batch", "job": job}
    else:
        target = {"kind": "qa", "run": read_document(str(qa_file), "--qa-file")}
    body: dict[str, Any] = {"name": name, "target": target, "pause_on_failure": pause_on_failure}
    body.update({"paused": paused} if paused else {})
    optional = {
        "cron": cron,
        "interval_s": parse_every(every) if every is not None else None,
        "time_zone": time_zone,
        "overlap": overlap.value if overlap else None,
        "note": note,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    renamed = {"target": target_option, "interval_s": "--every"}
    api = CliApi(what="the schedule", option_of=options_named(renamed))
    schedule = answer("POST", f"{API}/schedules", json=body, as_json=as_json, api=api)
    if schedule is None:
        return
    out = console()
    state = "paused" if schedule["paused"] else f"next at {short_time(_first(schedule['next_action_times']))}"
    out.print(
        f"created {schedule['schedule_id']}: {_target(schedule['target'])}, {_timing(schedule)}; {state}"
    )


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


@schedules_app.command("list")
def list_schedules(
    kind: Annotated[str | None, typer.Option(help="Only schedules that start runs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Schedules per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List schedules. Temporal's list lags a moment behind a change.

    Example: `crucible schedules list --kind pipeline`
    """
    params: dict[str, Any] = {
        "limit": limit,
        **({"kind": kind} if kind else {}),
        **({"cursor": cursor} if cursor else {}),
    }
    page = answer("GET", f"{API}/schedules", params=params, as_json=as_json)
    if page is None:
        return
    out = console()
    table = Table("SCHEDULE", "STARTS", "WHEN", "STATE", "NEXT (UTC)", box=None)
    for schedule in page["items"]:
        state = "[yellow]paused[/yellow]" if schedule["paused"] else "active"
        table.add_row(
            schedule["schedule_id"],
            escape(_target(schedule["target"])),
            escape(_timing(schedule)),
            state,
            short_time(_first(schedule["next_action_times"])),
        )
    out.print(table if page["items"] else "no schedules")
    if page["next_cursor"]:
        out.print(f"more: crucible schedules list --cursor {page['next_cursor']}")


@schedules_app.command("show")
def show(schedule_id: ScheduleArg, as_json: JsonOpt = False) -> None:
    """Show a schedule: what it starts and when, its state, next action times and recent runs.

    Example: `crucible schedules show nightly-anomalies`
    """
    schedule = answer("GET", f"{API}/schedules/{schedule_id}", as_json=as_json)
    if schedule is None:
        return
    out = console()
    state = "paused" if schedule["paused"] else "active"
    rows = {
        "schedule": schedule["schedule_id"],
        "starts": _target(schedule["target"]),
        "when": _timing(schedule),
        "overlap": schedule.get("overlap") or "",
        "state": state + (" (pauses when a run fails)" if schedule.get("pause_on_failure") else ""),
        "note": schedule.get("note") or "",
        "actions": str(schedule.get("actions_taken") or 0),
        "running": ", ".join(schedule.get("running") or []),
        "created": short_time(schedule.get("created_at")),
        "web ui": schedule["temporal_ui_url"],
    }
    table = Table(show_header=False, box=None)
    for key, value in rows.items():
        table.add_row(key, escape(value))
    out.print(table)
    times = schedule["next_action_times"]
    shown = ", ".join(short_time(t) for t in times[:3]) + (", …" if len(times) > 3 else "")
    out.print(f"next actions (UTC): {shown or 'none'}")
    if not schedule["recent_runs"]:
        out.print("no runs yet")
        return
    runs = Table("RECENT RUN", "SCHEDULED (UTC)", "STARTED (UTC)", box=None)
    for recent in schedule["recent_runs"]:
        runs.add_row(recent["run_id"], short_time(recent["scheduled_at"]), short_time(recent["started_at"]))
    out.print(runs)


@schedules_app.command("pause")
def pause(
    schedule_id: ScheduleArg,
    note: Annotated[str | None, typer.Option(help="Why; shown with the schedule's state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pause a schedule: it starts nothing until unpaused (`trigger` still does).

    Example: `crucible schedules pause nightly-anomalies --note "input feed down"`
    """
    path = f"{API}/schedules/{schedule_id}/pause"
    _print_changed(answer("POST", path, json={"note": note}, as_json=as_json), "paused")


@schedules_app.command("unpause")
def unpause(
    schedule_id: ScheduleArg,
    note: Annotated[str | None, typer.Option(help="Shown with the schedule's state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Unpause a schedule.

    Example: `crucible schedules unpause nightly-anomalies`
    """
    path = f"{API}/schedules/{schedule_id}/unpause"
    _print_changed(answer("POST", path, json={"note": note}, as_json=as_json), "active")


@schedules_app.command("trigger")
def trigger(schedule_id: ScheduleArg, overlap: OverlapOpt = None, as_json: JsonOpt = False) -> None:
    """Start a run now, paused or not; `--overlap` overrides the schedule's policy this once.

    Example: `crucible schedules trigger nightly-anomalies`
    """
    body = {"overlap": overlap.value} if overlap else {}
    if answer("POST", f"{API}/schedules/{schedule_id}/trigger", json=body, as_json=as_json) is None:
        return
    console().print(f"{schedule_id}: triggered; `crucible schedules show {schedule_id}` lists the run")


@schedules_app.command("backfill")
def backfill(
    schedule_id: ScheduleArg,
    start: Annotated[
        str, typer.Option(help="ISO 8601; without an offset, UTC.", metavar="ISO", show_default=False)
    ],
    end: Annotated[str, typer.Option(help="ISO 8601, after `--start`.", metavar="ISO", show_default=False)],
    overlap: OverlapOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take the actions the schedule would have taken from `--start` to `--end`, now.

    At most 1,000 actions. Under the `skip` overlap policy only the first of overlapping
    runs starts, so a backfill usually wants `--overlap buffer_all` or `allow_all`.

    Example: `crucible schedules backfill nightly-anomalies --start 2026-01-01T00:00 --end 2026-01-08T00:00
    --overlap buffer_all`
    """
    body: dict[str, Any] = {"start": start, "end": end, **({"overlap": overlap.value} if overlap else {})}
    api = CliApi(what="the backfill")
    accepted = answer("POST", f"{API}/schedules/{schedule_id}/backfill", json=body, as_json=as_json, api=api)
    if accepted is None:
        return
    console().print(f"{schedule_id}: backfill requested, about {accepted.get('actions')} runs")


@schedules_app.command("delete")
def delete(schedule_id: ScheduleArg) -> None:
    """Delete a schedule; runs it started go on.

    Example: `crucible schedules delete nightly-anomalies`
    """
    with CliApi() as api:
        api.call("DELETE", f"{API}/schedules/{schedule_id}")
    console().print(f"deleted {schedule_id}")
