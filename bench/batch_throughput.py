"""Batch job throughput: ``python -m bench.batch_throughput [--rows 1000000] [--chunk-size 10000] …``.

A CSV of ``--rows`` rows is run through ``--processor`` (anomaly-detection) twice per
round, in alternating order, in the same process on the same machine:

- Crucible: ``POST /api/v1/batch-jobs`` until the job's workflow has closed, with its
  first pass, chunks, checkpoints, events and the combined output file included;
- the plain loop (:func:`crucible.core.batch.plain.run_plain`): the same processor over the
  same file in one process, one pass for the statistics and one for the records.

It checks that both flag exactly the same rows, then prints each one's records per
second, their ratio (target: Crucible at least 0.8 of the plain loop), the peak memory
of the worker and the API, and each run's Temporal history length.

Then, unless ``--no-crash``, one more job has its worker killed with SIGKILL at a random
moment after a random chunk; a new worker is started and the job must complete with the
same output, no finished chunk processed again, and events that show where it resumed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from temporalio.client import Client

from bench.event_log.procfs import peak_rss_mb, rss_mb
from bench.event_log.report import machine, run_and_report
from bench.event_log.stack import NAMESPACE
from bench.event_log.write import BenchmarkError
from bench.qa_stack import QaBenchStack, running_qa_stack
from crucible.core.batch.plain import run_plain
from tests.support.batch_data import write_sample_csv

RUN_TIMEOUT_S = 1800


@dataclass
class Round:
    number: int
    crucible_s: float
    plain_s: float
    history_events: int


@dataclass
class Crash:
    killed_after_chunk: int
    chunks: int
    seconds: float
    resumed: list[dict[str, Any]]
    processed: int
    found_on_disk: int


@dataclass
class Results:
    options: dict[str, Any]
    rows: int = 0
    output_lines: int = 0
    rounds: list[Round] = field(default_factory=list)
    rss_ready_mb: dict[str, float] = field(default_factory=dict)
    rss_peak_mb: dict[str, float] = field(default_factory=dict)
    crash: Crash | None = None
    total_s: float = 0.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the CSV")
    parser.add_argument("--chunk-size", type=int, default=10_000, help="records per chunk")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the order alternates")
    parser.add_argument("--no-crash", dest="crash", action="store_false", help="skip the kill -9 round")
    parser.add_argument("--markdown", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if min(args.rows, args.chunk_size, args.rounds) < 1:
        parser.error("--rows, --chunk-size and --rounds must be at least 1")
    return args


def read_output(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f]


async def crucible_job(
    api: httpx.AsyncClient, client: Client, source: Path, output: Path, chunk: int
) -> tuple[float, int]:
    body = {
        "input": str(source),
        "processor": "anomaly-detection",
        "chunk_size": chunk,
        "output": str(output),
    }
    started = time.perf_counter()
    response = await api.post("/api/v1/batch-jobs", json=body)
    if response.status_code != 202:
        raise BenchmarkError(f"POST /api/v1/batch-jobs answered {response.status_code}: {response.text}")
    handle = client.get_workflow_handle(response.json()["run_id"])
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await handle.result()
    seconds = time.perf_counter() - started
    events = 0
    async for _ in handle.fetch_history_events():
        events += 1
    return seconds, events


async def progress_events(dsn: str, run_id: str, kind: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute(
            "SELECT data FROM run_events WHERE run_id = %s AND type = %s ORDER BY seq", (run_id, kind)
        )
        return [row[0] for row in await cursor.fetchall()]


async def crash_round(
    stack: QaBenchStack, api: httpx.AsyncClient, client: Client, source: Path, args: argparse.Namespace
) -> tuple[Crash, Path]:
    """A job whose worker is killed at a random chunk; a new worker carries it to the end."""
    chunks = math.ceil(args.rows / args.chunk_size)
    kill_after = random.randint(1, max(1, chunks * 2 // 3))
    output = source.with_name("flagged-crash.jsonl")
    body = {"input": str(source), "processor": "anomaly-detection", "chunk_size": args.chunk_size}
    started = time.perf_counter()
    response = await api.post("/api/v1/batch-jobs", json={**body, "output": str(output)})
    run_id = response.json()["run_id"]
    # The chunks the worker has finished are its part files: kill it once there are that many.
    parts = stack.workdir / "home" / "batch" / run_id / "parts"
    async with asyncio.timeout(RUN_TIMEOUT_S):
        while len(list(parts.glob("*.jsonl"))) < kill_after:
            await asyncio.sleep(0.005)
    recorded = len(list(parts.glob("*.jsonl")))
    worker = stack.processes["worker"]
    worker.kill()
    await worker.stop(5)
    print(f"  killed the worker (SIGKILL) with {recorded} chunks done; starting a new one", flush=True)
    await stack.start_worker()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await client.get_workflow_handle(run_id).result()
    seconds = time.perf_counter() - started
    progress = await progress_events(stack.dsn, run_id, "PROGRESS")
    crash = Crash(
        killed_after_chunk=recorded,
        chunks=chunks,
        seconds=seconds,
        resumed=await progress_events(stack.dsn, run_id, "RESUMED"),
        processed=sum(p["processed"] for p in progress),
        found_on_disk=sum(p["found_on_disk"] for p in progress),
    )
    if crash.processed + crash.found_on_disk != chunks:
        raise BenchmarkError(
            f"after the crash, {crash.processed + crash.found_on_disk} chunks of {chunks} were done"
        )
    if not crash.resumed:
        raise BenchmarkError("after the crash, no RESUMED event says where the job carried on")
    return crash, output


async def bench(args: argparse.Namespace) -> Results:
    results = Results(options=vars(args) | {"markdown": str(args.markdown) if args.markdown else None})
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="crucible-batch-bench-"))
    try:
        source = workdir / "rows.csv"
        print(f"writing {args.rows:,} rows to {source}", flush=True)
        await asyncio.to_thread(write_sample_csv, source, args.rows)
        results.rows = args.rows
        print(f"starting PostgreSQL, Kafka, Temporal, the worker and the API in {workdir}", flush=True)
        async with running_qa_stack(workdir, targets={}, operations=0) as stack:
            client = await Client.connect(stack.temporal_address, namespace=NAMESPACE)
            results.rss_ready_mb = {name: rss_mb(stack.pid(name)) for name in ("worker", "api")}
            async with httpx.AsyncClient(
                base_url=stack.api_url, headers=stack.api_headers, timeout=30
            ) as api:
                for number in range(1, args.rounds + 1):
                    output = workdir / f"flagged-{number}.jsonl"
                    plain_first = number % 2 == 1
                    timings: dict[str, float] = {}
                    events = 0
                    for contender in ("plain", "crucible") if plain_first else ("crucible", "plain"):
                        if contender == "plain":
                            t0 = time.perf_counter()
                            plain = await asyncio.to_thread(run_plain, str(source), "anomaly-detection", {})
                            timings["plain"] = time.perf_counter() - t0
                        else:
                            timings["crucible"], events = await crucible_job(
                                api, client, source, output, args.chunk_size
                            )
                    flagged = await asyncio.to_thread(read_output, output)
                    if flagged != plain.lines:
                        raise BenchmarkError(
                            f"round {number}: Crucible's output differs from the plain loop's"
                        )
                    results.output_lines = len(flagged)
                    results.rounds.append(Round(number, timings["crucible"], timings["plain"], events))
                    print(
                        f"  round {number}: Crucible {args.rows / timings['crucible']:,.0f} records/s, "
                        f"plain {args.rows / timings['plain']:,.0f} records/s, {events} history events",
                        flush=True,
                    )
                results.rss_peak_mb = {name: peak_rss_mb(stack.pid(name)) for name in ("worker", "api")}
                if args.crash:
                    results.crash, output = await crash_round(stack, api, client, source, args)
                    if await asyncio.to_thread(read_output, output) != plain.lines:
                        raise BenchmarkError("after the crash, the output differs from the plain loop's")
    finally:
        if args.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results.total_s = time.perf_counter() - started
    return results


def render(results: Results) -> str:
    rows = results.rows
    crucible = [rows / r.crucible_s for r in results.rounds]
    plain = [rows / r.plain_s for r in results.rounds]
    ratios = [r.plain_s / r.crucible_s for r in results.rounds]
    ratio = statistics.median(ratios)
    lines = [
        "## Batch job throughput (`python -m bench.batch_throughput`)",
        "",
        *machine(),
        "",
        f"{rows:,} CSV rows, anomaly-detection (z-score and IQR over 3 numeric columns), "
        f"chunk size {results.options['chunk_size']:,}, {len(results.rounds)} rounds; "
        f"{results.output_lines:,} rows flagged, identical in every round to the plain loop's.",
        "",
        "| contender | records/s (median) | range |",
        "|---|---|---|",
        f"| Crucible batch job | {statistics.median(crucible):,.0f} "
        f"| {min(crucible):,.0f} to {max(crucible):,.0f} |",
        f"| plain loop, one process | {statistics.median(plain):,.0f} "
        f"| {min(plain):,.0f} to {max(plain):,.0f} |",
        "",
        f"**Crucible / plain loop: {ratio:.2f}** (per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"target ≥ 0.8: {'met' if ratio >= 0.8 else 'NOT met'}).",
        "",
        "| process | RSS when ready | peak RSS |",
        "|---|---|---|",
        *(
            f"| {name} | {results.rss_ready_mb[name]:.0f} MB | {results.rss_peak_mb[name]:.0f} MB |"
            for name in ("worker", "api")
        ),
        "",
        f"Temporal history per job: {', '.join(str(r.history_events) for r in results.rounds)} events. "
        f"Whole benchmark: {results.total_s:.0f} s.",
    ]
    if (crash := results.crash) is not None:
        normal = statistics.median(r.crucible_s for r in results.rounds)
        where = ", ".join(f"attempt {r.get('attempt')} at chunk {r['chunk']}" for r in crash.resumed)
        lines += [
            "",
            f"**Crash recovery.** The worker was killed (SIGKILL) once it had finished chunk "
            f"{crash.killed_after_chunk} of {crash.chunks} (a random one), and a new one started. The job "
            f"completed with the same output as the plain loop in {crash.seconds:.1f} s "
            f"({crash.seconds - normal:+.1f} s against an undisturbed job). RESUMED: {where}. Of the "
            f"{crash.chunks} chunks, {crash.processed} were processed by segments that completed and "
            f"{crash.found_on_disk} were read back from the part files the dead worker had written: "
            "no finished chunk was processed twice.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    run_and_report(bench(args), render, args.markdown)


if __name__ == "__main__":
    main()
