"""What ``crucible qa run`` shows: live progress while the run goes on, then its results."""

from __future__ import annotations

from typing import Any

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

from crucible.cli.common import TERMINAL_EVENTS


class Watch:
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


def print_table(out: Console, report: dict[str, Any]) -> None:
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


def print_verdict(out: Console, report: dict[str, Any]) -> None:
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


def print_links(out: Console, run_id: str, links: dict[str, str], base: str) -> None:
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
