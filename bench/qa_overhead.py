"""Crucible's QA run overhead: ``python -m bench.qa_overhead [--operations 200] [--concurrency 8] …``.

A QA package of ``--operations`` operations (a synthetic OpenAPI 3.0 spec, see
:mod:`bench.qa_target`) is tested against a local target that answers each request
after ``--delay-ms`` (10), and against a copy that answers at once (0 ms). In the same
process, at the same concurrency, in alternating rounds, it times:

- Crucible: ``POST /api/v1/qa-runs`` until the run's workflow has closed (its
  COMPLETE event written), scenario generation, checks, storage and evaluation included;
- the plain script (:mod:`bench.qa_plain`): the same scenarios, read back from
  PostgreSQL, sent with aiohttp and nothing else;
- Schemathesis (``schemathesis run --workers N``, default phases and checks) once on
  each target, for its test cases per second; Crucible runs ``--rounds`` times again on
  that target right after it, and its rate before and after is what Schemathesis' is
  compared with (the machine's speed drifts over the minutes Schemathesis takes).

It prints Crucible's time over the plain script's at 10 ms (target: at most 2) and at
0 ms, Crucible's scenarios per second over Schemathesis's test cases per second on each
target (target: at least 10), peak memory, each run's Temporal history size, and where a run's
wall time goes (from its history's timestamps) with CPU time per process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_aiohttp import AiohttpTransport
from temporalio.client import Client

from bench.event_log.procfs import own_cpu_seconds, peak_rss_mb, rss_mb, tree_cpu_seconds
from bench.event_log.report import run_and_report
from bench.event_log.stack import NAMESPACE
from bench.event_log.write import BenchmarkError
from bench.qa_history import fetch_run_history, timeline
from bench.qa_plain import PlainRequest, build_requests, new_session, read_scenarios, replay, unexpected
from bench.qa_report import label, render
from bench.qa_results import (
    AFTER,
    CRUCIBLE,
    FAST,
    PARTS,
    PLAIN,
    RUN_TIMEOUT_S,
    SLOW,
    CrucibleRun,
    Options,
    Results,
    Sample,
    SchemathesisResult,
)
from bench.qa_stack import QaBenchStack, running_qa_stack
from bench.qa_target import SPEC_PATH


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
            f"  {label(target, self.options):>5} {contender:<8} round {number}: {seconds:6.2f} s, "
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
            httpx.AsyncClient(
                base_url=self.stack.api_url, headers=self.stack.api_headers, transport=transport, timeout=30
            ) as api,
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
            if opts.schemathesis:
                for target in (SLOW, FAST):
                    self.results.schemathesis[target] = await run_schemathesis(
                        self.stack.targets[target], opts, self.stack.workdir, target
                    )
                    for number in range(1, opts.rounds + 1):
                        work = functools.partial(self.crucible, api, target, keep=False)
                        await self._timed(target, AFTER, number, work)
        self.results.rss_peak_mb = {name: peak_rss_mb(self.stack.pid(name)) for name in names}
        self.results.checks.append(
            f"every Crucible run ({self.crucible_runs} in all) is COMPLETED and PASSED, with "
            f"all {self.results.scenarios:,} scenarios of its {self.results.operations} operations passed"
        )
        self.results.checks.append(
            "every plain-script answer has the status class its scenario expects "
            "(2xx for valid data, 4xx for invalid, never 5xx)"
        )


def _schemathesis_executable() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        raise BenchmarkError(
            "schemathesis is not installed: pip install -e '.[bench]' (or --no-schemathesis)"
        )
    return found


async def run_schemathesis(base_url: str, opts: Options, workdir: Path, target: str) -> SchemathesisResult:
    report_path = workdir / f"schemathesis-{target}.json"
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
    with (workdir / f"schemathesis-{target}.log").open("wb") as log:
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


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    print(f"options: {asdict(options)}", flush=True)
    run_and_report(bench(options), render, options.markdown)


if __name__ == "__main__":
    main()
