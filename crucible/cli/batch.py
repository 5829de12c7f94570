"""``crucible batch``: start or resume a batch job, follow it live and report its output."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from crucible.cli.api_calls import (
    EXIT_FAILED,
    EXIT_OK,
    CliApi,
    FollowOpt,
    RunJsonOpt,
    follow_started,
    options_named,
)
from crucible.cli.common import API, console, errors
from crucible.cli.inputs import absolute, parse_headers, parse_pairs, read_document

batch_app = typer.Typer(
    help="Run a processor over every record of a CSV or JSON Lines file, in chunks; resume a failed job.",
    epilog="Exit codes: 0 the job completed, 1 it completed but skipped failed chunks, 2 a usage error "
    "or a request the API refused as invalid, 3 the job failed, any other refusal, or no API.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

#: The job completed, but skipped chunks that failed (the other exit codes are in ``api_calls``).
EXIT_CHUNKS_SKIPPED = 1


class Processor(StrEnum):
    anomaly_detection = "anomaly-detection"
    schema_validation = "schema-validation"
    http = "http"


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class OnChunkFailure(StrEnum):
    fail = "fail"
    skip = "skip"


def _batch_option(loc: Sequence[str]) -> str:
    if loc[0] == "options" and len(loc) > 1:
        return f"--option {loc[1]}"
    return options_named({"options": "--option", "headers": "--header"})(loc)


@batch_app.command("run")
def run(
    source: Annotated[
        str,
        typer.Option(
            "--input",
            help="The CSV or JSON Lines file: a path the workers can read (a relative one is made "
            "absolute), or an http(s) URL they download.",
            metavar="PATH|URL",
            show_default=False,
        ),
    ],
    processor: Annotated[Processor, typer.Option(help="What to do with each record.", show_default=False)],
    output: Annotated[
        str,
        typer.Option(
            help="The JSON Lines output file (a relative path is made absolute); its folder must "
            "exist on the workers.",
            metavar="PATH",
            show_default=False,
        ),
    ],
    chunk_size: Annotated[
        int | None, typer.Option(help="Records per chunk (default 10000).", min=1, metavar="N")
    ] = None,
    max_chunk_retries: Annotated[
        int | None, typer.Option(help="Retries of a failing chunk (default 3).", min=0, metavar="N")
    ] = None,
    on_chunk_failure: Annotated[
        OnChunkFailure | None,
        typer.Option(help="After the retries: fail the job (resumable) or skip the chunk (default fail)."),
    ] = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", help="The input's format (default: from its name).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="A processor option, e.g. `z_threshold=3.5` or `columns='[\"amount\"]'`: JSON when the "
            "value parses as JSON, else a string. Repeatable; overrides `--options-file`.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    options_file: Annotated[
        str | None,
        typer.Option(help="The processor's options as a JSON (or YAML) object.", metavar="FILE"),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            help='For the http processor: send `"Name: value"` with every request. Repeatable. '
            "Values are stored encrypted and never shown.",
            metavar="'NAME: VALUE'",
        ),
    ] = None,
    follow_run: FollowOpt = True,
    as_json: RunJsonOpt = False,
) -> None:
    """Start a batch job and follow it to its end.

    Relative `--input` and `--output` paths are made absolute from the current folder, since
    the API takes only absolute paths: the workers must be able to read and write them.
    While the job runs a progress line shows chunks done, records per second and the time
    left; at the end a summary gives the output file, records, output lines and failed chunks.

    Exit codes: **0** the job completed, **1** it completed but skipped failed chunks,
    **2** a usage error (including input the API refused), **3** the job failed or was
    cancelled, or the API refused or could not be reached, **130** Ctrl-C (the job goes on).

    Example: `crucible batch run --input rows.csv --processor anomaly-detection --output flagged.jsonl
    --option z_threshold=3.5`
    """
    cwd = Path.cwd()
    body: dict[str, Any] = {
        "input": absolute(source, cwd),
        "processor": processor.value,
        "output": absolute(output, cwd),
    }
    optional = {
        "chunk_size": chunk_size,
        "max_chunk_retries": max_chunk_retries,
        "on_chunk_failure": on_chunk_failure.value if on_chunk_failure else None,
        "format": fmt.value if fmt else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    options = read_document(options_file, "--options-file") if options_file else {}
    options.update(parse_pairs(option or [], "--option"))
    if options:
        body["options"] = options
    if header:
        body["headers"] = parse_headers(header)
    with CliApi(what="the batch job", option_of=_batch_option) as api:
        accepted = api.call("POST", f"{API}/batch-jobs", json=body).json()
        _started(api, accepted, follow_run=follow_run, as_json=as_json)


@batch_app.command("resume")
def resume(
    run_id: Annotated[
        str, typer.Argument(help="The failed or cancelled job, `batch-…`.", show_default=False)
    ],
    follow_run: FollowOpt = True,
    as_json: RunJsonOpt = False,
) -> None:
    """Carry a failed or cancelled batch job on from its last checkpoint, as a new run.

    Only the chunks after the checkpoint are processed; the output of those before is reused.
    A job is resumed once, and a running or completed one not at all (exit 3).
    Exit codes as for `crucible batch run`.

    Example: `crucible batch resume batch-6f1c…`
    """
    with CliApi(what="the resume") as api:
        accepted = api.call("POST", f"{API}/batch-jobs/{run_id}/resume").json()
        _started(api, accepted, follow_run=follow_run, as_json=as_json)


def _started(api: CliApi, accepted: dict[str, Any], *, follow_run: bool, as_json: bool) -> None:
    watch = BatchWatch(errors())
    with watch.progress:
        ended = follow_started(api, accepted, follow_run=follow_run, as_json=as_json, see=watch.see)
    if ended is not None:
        run, result = ended
        raise typer.Exit(_summary(errors() if as_json else console(), run, result))


def _summary(out: Console, run: dict[str, Any], result: dict[str, Any]) -> int:
    """Print how the job ended; its exit code."""
    run_id, status, summary = run["run_id"], run["status"], run.get("summary") or {}
    if status != "COMPLETED":
        out.print(f"run:      {run_id}\ntemporal: {run['temporal_ui_url']}", soft_wrap=True)
        why = result.get("message") or result.get("reason") or f"it ended {status}"
        err = errors()
        err.print(f"[red]error:[/red] the job {status.lower()}: {escape(str(why))}")
        err.print(f"once the cause is fixed, `crucible batch resume {run_id}` carries it on", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    failed = result.get("failed_chunks") or []
    skipped = len(failed) if result else int(summary.get("failed_chunks") or 0)
    records = result.get("records", summary.get("records_done"))
    chunks = result.get("chunks", summary.get("chunks_total"))
    out.print(f"output:        {escape(str(result.get('output', summary.get('output'))))}", soft_wrap=True)
    out.print(f"records:       {_count(records)} in {_count(chunks)} chunks")
    out.print(f"output lines:  {_count(result.get('output_lines', summary.get('output_lines')))}")
    out.print(f"failed chunks: {skipped}" + (" [yellow](skipped)[/yellow]" if skipped else ""))
    for chunk in failed[:10]:
        out.print(f"  chunk {chunk['chunk']} from row {chunk['first_row']}: {escape(str(chunk['error']))}")
    if len(failed) > 10:
        out.print(f"  … {len(failed) - 10} more (`--json` lists up to 100)")
    out.print(f"run:           {run_id}\ntemporal:      {run['temporal_ui_url']}", soft_wrap=True)
    return EXIT_CHUNKS_SKIPPED if skipped else EXIT_OK


class BatchWatch:
    """The live view of a batch job: a progress bar on a terminal, else a line per event."""

    def __init__(self, out: Console) -> None:
        self.live = out.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks  {task.fields[rates]}"),
            console=out,
            disable=not self.live,
        )
        self.task = self.progress.add_task("preparing", total=None, rates="")

    def see(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope.get("data") or {}
        say = self.progress.console.print
        if kind == "INPUT_SCANNED":
            self.progress.update(self.task, total=data.get("chunks"), description="processing")
            records = _count(data.get("records"))
            say(f"scanned {records} {data.get('format')} records: {data.get('chunks')} chunks")
        elif kind == "RESUMED" and data.get("from_run"):
            records = _count(data.get("records_done"))
            say(f"carrying {data['from_run']} on from chunk {data.get('chunk')} ({records} records done)")
        elif kind == "RESUMED":
            say(f"[yellow]a worker was lost; chunk {data.get('chunk')} carried on[/yellow]")
        elif kind == "PROGRESS":
            done, total = data.get("chunks_done"), data.get("chunks_total")
            self.progress.update(self.task, completed=done, total=total, rates=rates(data))
            if not self.live:
                say(f"chunks {done}/{total}  {rates(data)}")
        elif kind == "CHUNK_FAILED":
            say(
                f"[red]chunk {data.get('chunk')} failed[/red] (from row {data.get('first_row')}, "
                f"{_plural(data.get('attempts'), 'attempt')}, {data.get('action')}): "
                f"{escape(str(data.get('error')))}"
            )
        elif kind == "INPUT_INVALID":
            say(f"[red]the input is not usable:[/red] {escape(str(data.get('reason')))}")


def rates(progress: dict[str, Any]) -> str:
    """Records done, records per second and the time left, of a ``PROGRESS`` event."""
    parts = [
        f"{_count(progress.get('records_done'))}/{_count(progress.get('records_total'))} records",
        f"{float(progress.get('records_per_second') or 0):,.0f} records/s",
    ]
    if progress.get("eta_seconds") is not None:
        parts.append(f"ETA {duration(float(progress['eta_seconds']))}")
    if progress.get("failed_chunks"):
        parts.append(_plural(progress["failed_chunks"], "failed chunk"))
    return "  ".join(parts)


def duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
