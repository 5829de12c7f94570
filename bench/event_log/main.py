"""Run the event-log benchmark: ``python -m bench.event_log [--runs N] [--rounds R] …``.

Start every part, warm up, then time the contenders of each path in alternating
rounds, check the event logs, and print the figures as Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_aiohttp import AiohttpTransport
from temporalio.client import Client

from bench.event_log.procfs import own_cpu_seconds, peak_rss_mb, rss_mb, tree_cpu_seconds
from bench.event_log.read import read_by_polling, read_by_sse, read_from_postgres
from bench.event_log.report import PARTS, Results, Sample, render
from bench.event_log.stack import NAMESPACE, TOPIC, BenchStack, running_stack
from bench.event_log.workflows import BATCHES_PER_RUN, EventLogBenchInput, events_per_run
from bench.event_log.write import BenchmarkError, check_kafka, check_postgres, new_run_ids, run_workflows


@dataclass(frozen=True)
class Options:
    runs: int = 200
    rounds: int = 2
    read_rounds: int = 5
    steps: int = 20
    data_bytes: int = 64
    concurrency: int = 100
    readers: int = 8
    page: int = 100
    warmup: int = 20
    durable_postgres: bool = False
    markdown: Path | None = None
    keep: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench.event_log", description=__doc__)
    add = parser.add_argument
    add("--runs", type=int, default=defaults.runs, help="workflows per contender per round")
    add("--rounds", type=int, default=defaults.rounds, help="write rounds; the contenders' order alternates")
    add("--read-rounds", type=int, default=defaults.read_rounds, help="read rounds (reads are quick)")
    add("--steps", type=int, default=defaults.steps, help="STEP events between REQUESTED and COMPLETE")
    add("--data-bytes", type=int, default=defaults.data_bytes, help="filler in each STEP event's data")
    add("--concurrency", type=int, default=defaults.concurrency, help="workflows in flight at once")
    add("--readers", type=int, default=defaults.readers, help="runs read at once on the read path")
    add("--page", type=int, default=defaults.page, help="events per page (the API's limit, 1 to 1000)")
    add("--warmup", type=int, default=defaults.warmup, help="untimed workflows per contender first")
    add("--durable-postgres", action="store_true", help="keep PostgreSQL's fsync and synchronous commit")
    add("--markdown", type=Path, help="also write the figures to this file")
    add("--keep", action="store_true", help="keep the work folder (data and logs of every part)")
    args = parser.parse_args(argv)
    if min(args.runs, args.rounds, args.read_rounds, args.steps, args.concurrency, args.readers) < 1:
        parser.error("--runs, --rounds, --read-rounds, --steps, --concurrency, --readers: at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if not 1 <= args.page <= 1000:
        parser.error("--page must be between 1 and 1000")
    return Options(**vars(args))


class Bench:
    """The benchmark against one running stack."""

    def __init__(self, stack: BenchStack, client: Client, options: Options, results: Results) -> None:
        self.stack = stack
        self.client = client
        self.options = options
        self.results = results
        self.input = EventLogBenchInput(steps=options.steps, data_bytes=options.data_bytes)
        self.events = events_per_run(self.input)
        self.written: list[str] = []  # every run the subject wrote, warm-up included

    def _cpu(self) -> dict[str, float]:
        roots = {name: self.stack.pid(name) for name in PARTS if name != "bench"}
        return {**tree_cpu_seconds(roots), "bench": own_cpu_seconds()}

    async def _timed(self, path: str, contender: str, number: int, runs: int, work: Awaitable[int]) -> None:
        before, started = self._cpu(), time.perf_counter()
        events = await work
        seconds, after = time.perf_counter() - started, self._cpu()
        cpu = {part: after[part] - before[part] for part in PARTS}
        self.results.samples.append(Sample(path, contender, number, runs, events, seconds, cpu))
        print(f"  {path:<5} {contender:<9} round {number}: {events / seconds:8,.0f} events/s", flush=True)

    async def _write(self, contender: str, count: int) -> int:
        run_ids = new_run_ids(count)
        await run_workflows(self.client, contender, self.input, run_ids, concurrency=self.options.concurrency)
        if contender == "subject":
            self.written.extend(run_ids)
        return count * self.events

    async def _read(
        self,
        contender: str,
        run_ids: Sequence[str],
        http: httpx.AsyncClient,
        connections: Sequence[psycopg.AsyncConnection[Any]],
    ) -> int:
        opts = self.options
        if contender == "postgres":
            return await read_from_postgres(connections, run_ids, events=self.events, page=opts.page)
        if contender == "polling":
            return await read_by_polling(
                http, run_ids, concurrency=opts.readers, events=self.events, page=opts.page
            )
        return await read_by_sse(http, run_ids, concurrency=opts.readers, events=self.events)

    async def run(self) -> None:
        names = ("worker", "api")
        self.results.rss_ready_mb = {name: rss_mb(self.stack.pid(name)) for name in names}
        await self.write_path()
        await self.check_writes()
        await self.read_path()
        self.results.rss_peak_mb = {name: peak_rss_mb(self.stack.pid(name)) for name in names}

    async def write_path(self) -> None:
        opts = self.options
        print(f"warming up: {opts.warmup} runs per contender", flush=True)
        for contender in ("baseline", "subject"):
            await self._write(contender, opts.warmup)
        print(f"write path: {opts.rounds} rounds of {opts.runs} runs per contender", flush=True)
        for number in range(1, opts.rounds + 1):
            order = ("baseline", "subject") if number % 2 else ("subject", "baseline")
            for contender in order:
                await self._timed("write", contender, number, opts.runs, self._write(contender, opts.runs))

    async def check_writes(self) -> None:
        await check_postgres(self.stack.dsn, self.written, events=self.events)
        self.results.checks.append(
            f"PostgreSQL: all {len(self.written):,} subject runs are COMPLETED with events "
            f"1..{self.events} (no gaps, no repeats), the last one COMPLETE"
        )
        kafka = await check_kafka(self.stack.kafka_bootstrap, TOPIC, self.written, events=self.events)
        self.results.checks.append(
            f"Kafka: all {len(self.written) * self.events:,} (run_id, seq) pairs on `{TOPIC}`; "
            f"{kafka.messages:,} messages, {kafka.repeats} repeats"
        )

    async def read_path(self) -> None:
        opts = self.options
        warmup, measured = self.written[: opts.warmup], self.written[opts.warmup :]
        print(f"read path: {opts.read_rounds} rounds over {len(measured)} runs per contender", flush=True)
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=self.stack.api_url,
                    headers=self.stack.api_headers,
                    transport=AiohttpTransport(),
                    timeout=30,
                )
            )
            connections = [
                await stack.enter_async_context(await psycopg.AsyncConnection.connect(self.stack.dsn))
                for _ in range(opts.readers)
            ]
            contenders = ("postgres", "polling", "sse")
            for contender in contenders:  # warms the API's pool and both sides' prepared statements
                await self._read(contender, warmup, http, connections)
            for number in range(1, opts.read_rounds + 1):
                shift = (number - 1) % len(contenders)
                for contender in contenders[shift:] + contenders[:shift]:
                    work = self._read(contender, measured, http, connections)
                    await self._timed("read", contender, number, len(measured), work)


async def bench(options: Options) -> Results:
    settings = {
        "runs per contender per round": options.runs,
        "write rounds": options.rounds,
        "read rounds": options.read_rounds,
        "events per run": f"{options.steps + 2} in {BATCHES_PER_RUN} batches",
        "STEP data filler": f"{options.data_bytes} B",
        "workflows in flight": options.concurrency,
        "readers": options.readers,
        "page": options.page,
        "PostgreSQL": "durable" if options.durable_postgres else "fsync off (as in the tests)",
    }
    results = Results(settings=settings)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="crucible-bench-"))
    print(f"starting PostgreSQL, Kafka, Temporal, the worker and the API in {workdir}", flush=True)
    try:
        async with running_stack(workdir, durable_postgres=options.durable_postgres) as stack:
            client = await Client.connect(stack.temporal_address, namespace=NAMESPACE)
            await Bench(stack, client, options, results).run()
    finally:
        if options.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results.total_seconds = time.perf_counter() - started
    return results


def _failures(exc: BaseException) -> list[BenchmarkError]:
    """The benchmark's own errors in ``exc``, out of the task groups that wrap them."""
    if isinstance(exc, BenchmarkError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [failure for inner in exc.exceptions for failure in _failures(inner)]
    return []


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    print(f"options: {asdict(options)}", flush=True)
    try:
        results = asyncio.run(bench(options))
    except Exception as exc:
        failures = _failures(exc)
        if not failures:
            raise
        for failure in failures:
            print(f"benchmark failed: {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    text = render(results)
    print()
    print(text)
    if options.markdown is not None:
        options.markdown.write_text(text)
        print(f"written to {options.markdown}", file=sys.stderr)
