"""The write path: run the workflows, then check what they left in PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from temporalio.client import Client

from bench.event_log.stack import TASK_QUEUE
from bench.event_log.workflows import (
    BENCH_KIND,
    DiscardEventsBenchWorkflow,
    EventLogBenchInput,
    EventLogBenchWorkflow,
    events_per_run,
)
from crucible.core.runs import RunStatus, new_run_id

#: A workflow stuck on its sink fails the benchmark instead of hanging it.
RUN_TIMEOUT = timedelta(minutes=2)
KAFKA_READ_TIMEOUT_S = 60

BenchRun = Callable[[Any, EventLogBenchInput], Awaitable[int]]

#: What each contender of the write path runs.
WORKFLOW_RUNS: dict[str, BenchRun] = {
    "baseline": DiscardEventsBenchWorkflow.run,
    "subject": EventLogBenchWorkflow.run,
}


class BenchmarkError(RuntimeError):
    """A contender did something wrong: figures measured around it would mean nothing."""


def new_run_ids(count: int) -> list[str]:
    return [new_run_id(BENCH_KIND) for _ in range(count)]


async def run_workflows(
    client: Client,
    contender: str,
    input: EventLogBenchInput,
    run_ids: Sequence[str],
    *,
    concurrency: int,
) -> None:
    """Run one workflow per id, at most ``concurrency`` at a time; each must return its event count."""
    run = WORKFLOW_RUNS[contender]
    slots = asyncio.Semaphore(concurrency)
    expected = events_per_run(input)

    async def one(run_id: str) -> None:
        async with slots:
            written = await client.execute_workflow(
                run, input, id=run_id, task_queue=TASK_QUEUE, run_timeout=RUN_TIMEOUT
            )
        if written != expected:
            raise BenchmarkError(f"{run_id} wrote {written} events, not {expected}")

    async with asyncio.TaskGroup() as group:
        for run_id in run_ids:
            group.create_task(one(run_id))


@dataclass(frozen=True)
class KafkaCheck:
    messages: int
    repeats: int


async def check_postgres(dsn: str, run_ids: Sequence[str], *, events: int) -> None:
    """Every run has a closed row and events 1..``events``, no gaps, ending in ``COMPLETE``."""
    query = """
        SELECT r.run_id, r.status, r.last_seq, count(e.seq), min(e.seq), max(e.seq),
               (array_agg(e.type ORDER BY e.seq DESC))[1]
        FROM runs AS r LEFT JOIN run_events AS e USING (run_id)
        WHERE r.run_id = ANY(%s)
        GROUP BY r.run_id
    """
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        rows = await (await conn.execute(query, (list(run_ids),))).fetchall()
    found = {row[0]: row[1:] for row in rows}
    problems = [f"{run_id}: no row in runs" for run_id in run_ids if run_id not in found]
    want = (RunStatus.COMPLETED.value, events, events, 1, events, "COMPLETE")
    for run_id, got in found.items():
        if tuple(got) != want:
            problems.append(
                f"{run_id}: (status, last_seq, count, min seq, max seq, last type) = {tuple(got)}, "
                f"expected {want}"
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        raise BenchmarkError(f"{len(problems)} of {len(run_ids)} event logs are wrong:\n  {shown}")


async def check_kafka(bootstrap: str, topic: str, run_ids: Sequence[str], *, events: int) -> KafkaCheck:
    """Every (run_id, seq) of the runs is on the topic; repeats are allowed (at least once)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata that partitions_for_topic reads
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        wanted = set(run_ids)
        seen: Counter[tuple[str, int]] = Counter()
        messages = 0

        async def drain() -> None:
            nonlocal messages
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batches.values():
                    for record in records:
                        envelope = json.loads(record.value or b"{}")
                        if envelope.get("run_id") in wanted:
                            messages += 1
                            seen[(envelope["run_id"], envelope["seq"])] += 1

        await asyncio.wait_for(drain(), KAFKA_READ_TIMEOUT_S)
    finally:
        await consumer.stop()
    missing = [(r, s) for r in run_ids for s in range(1, events + 1) if (r, s) not in seen]
    if missing:
        raise BenchmarkError(f"{len(missing)} events never reached Kafka, e.g. {missing[:5]}")
    return KafkaCheck(messages=messages, repeats=messages - len(seen))
