"""``crucible saga-tests run``: start an event-driven saga test from a file, follow it, report its verdict."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from crucible.cli.api_calls import EXIT_FAILED, CliApi, FollowOpt, RunJsonOpt, file_option, follow_started
from crucible.cli.common import API, console, errors
from crucible.cli.inputs import read_document
from crucible.cli.qa import EXIT_PASSED, EXIT_VERDICT_FAILED

saga_tests_app = typer.Typer(
    help="Test a saga by its events: watch Kafka topics, trigger the flow (with a fault), assert "
    "what was published.",
    epilog="Exit codes: 0 the verdict is PASSED, 1 it is FAILED, 2 a usage error or a request the "
    "API refused as invalid, 3 the test could not run, any other refusal, or no API, 130 Ctrl-C.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

_LABEL_WIDTH = 12


@saga_tests_app.command("run")
def run(
    file: Annotated[str, file_option("The test: `topics`, `trigger`, `expected_events`, …")],
    follow_run: FollowOpt = True,
    as_json: RunJsonOpt = False,
) -> None:
    """Start a saga test and follow it to its verdict.

    The file holds the body of `POST /api/v1/saga-tests` (see docs/sagas.md). While the test
    runs, a line shows the fault injected, the trigger, each event observed for the correlation
    id and the fault's rollback; then each assertion, passed or failed with its reason.

    Exit codes: **0** the verdict is PASSED, **1** it is FAILED (the saga misbehaved),
    **2** a usage error (including a test the API refused), **3** the test itself could not run
    (a topic that does not exist, a fault that could not be injected), was cancelled, or the API
    refused or could not be reached, **130** Ctrl-C (the test goes on).

    Example: `crucible saga-tests run --file examples/shop/saga_test.json`
    """
    definition = read_document(file, "--file")
    out = errors() if as_json else console()
    watch = SagaTestWatch(out)
    with CliApi(what=f"the saga test in {file}", option_of=lambda loc: "--file") as api:
        accepted = api.call("POST", f"{API}/saga-tests", json=definition).json()
        ended = follow_started(api, accepted, follow_run=follow_run, as_json=as_json, see=watch.see)
    if ended is not None:
        raise typer.Exit(print_verdict(out, *ended))


class SagaTestWatch:
    """Prints a line per step of a saga test it is shown, and one per assertion."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.fault: dict[str, Any] = {}
        self.trigger = "the trigger"
        self.type_width = 0

    def say(self, label: str, text: str) -> None:
        self.out.print(f"{label:<{_LABEL_WIDTH}} {escape(text)}", soft_wrap=True)

    def see(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope.get("data") or {}
        if kind == "REQUESTED":
            self.say("watching", ", ".join(data.get("topics") or []))
            self.say("expecting", " → ".join(data.get("expected_events") or []))
            self.fault = data.get("fault") or {}
            trigger = data.get("trigger") or {}
            self.trigger = f"{trigger.get('method')} {trigger.get('url')}"
            self.type_width = max(map(len, data.get("expected_events") or [""]))
        elif kind == "FAULT_INJECTED":
            process = data.get("process") or {}
            self.say("fault", _fault(data, data.get("http"), process.get("signal"), process.get("pid")))
        elif kind == "TRIGGERED":
            answer = data.get("status") or "no answer"
            found = data.get("problem") or f"correlation id {data.get('correlation_id')}"
            self.say("triggered", f"{self.trigger}: {answer} in {data.get('elapsed_ms', 0):.0f} ms; {found}")
        elif kind == "EVENT_OBSERVED":
            where = f"{data.get('topic')}[{data.get('partition')}]@{data.get('offset')}"
            self.say("observed", f"{data.get('type'):<{self.type_width}}  {where}  {data.get('timestamp')}")
        elif kind == "FAULT_ROLLED_BACK":
            fault, pid = self.fault, (self.fault.get("process") or {}).get("pid")
            done = _fault(data, fault.get("rollback_http"), fault.get("rollback_signal"), pid)
            self.say("rolled back", done if data.get("ok") else f"failed: {data.get('error')}")
        elif kind in ("ASSERTION_PASSED", "ASSERTION_FAILED"):
            mark = "[green]✓ passed[/green]" if kind == "ASSERTION_PASSED" else "[red]✗ failed[/red]"
            self.out.print(f"{mark}  {escape(str(data.get('name')))}: {escape(str(data.get('reason')))}")


def print_verdict(out: Console, run: dict[str, Any], result: dict[str, Any]) -> int:
    """Print the test's verdict, from its run and the data of its terminal event; its exit code."""
    summary = run.get("summary") or {}
    verdict = run.get("verdict") or result.get("verdict")
    if run["status"] == "COMPLETED" and verdict in ("PASSED", "FAILED"):
        assertions = summary.get("assertions") or result.get("assertions") or []
        passed = sum(1 for a in assertions if a.get("passed"))
        colour = "green" if verdict == "PASSED" else "red"
        out.print(
            f"\n[bold {colour}]{verdict}[/bold {colour}]  {passed} of {len(assertions)} assertions passed"
        )
        out.print(
            f"correlation id: {escape(str(summary.get('correlation_id', result.get('correlation_id'))))}"
        )
        out.print(f"observed:       {escape(' → '.join(summary.get('observed') or [])) or 'nothing'}")
        if summary.get("recovery_s") is not None:
            out.print(f"recovery:       {summary['recovery_s']:g} s")
    out.print(f"run:            {run['run_id']}\ntemporal:       {run['temporal_ui_url']}", soft_wrap=True)
    if run["status"] == "COMPLETED" and verdict in ("PASSED", "FAILED"):
        return EXIT_PASSED if verdict == "PASSED" else EXIT_VERDICT_FAILED
    why = result.get("message") or result.get("reason") or f"it ended {run['status']} without a verdict"
    ending = "was cancelled" if run["status"] == "CANCELLED" else "could not run"
    errors().print(f"[red]error:[/red] the saga test {ending}: {escape(str(why))}")
    return EXIT_FAILED


def _fault(done: dict[str, Any], request: dict[str, Any] | None, signal: str | None, pid: Any) -> str:
    """What a fault or its rollback did: the request and its answer, the signal it sent."""
    parts = []
    if request and done.get("status") is not None:
        parts.append(f"{request.get('method')} {request.get('url')}: {done['status']}")
    if done.get("signalled"):
        parts.append(f"sent {signal} to pid {pid}")
    if done.get("note"):
        parts.append(str(done["note"]))
    return "; ".join(parts) or "done"
