"""The single-pass reference: a processor run over a whole input as a plain loop, in one process.

Tests and benchmarks compare a chunked job with it: the job's output lines must equal
these, whatever its chunk size. It reads in large steps to bound memory; the processors'
results do not depend on where steps or chunks begin.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from crucible.core.batch.processors import ChunkContext, build_processor
from crucible.core.batch.processors.http import HttpProcessor
from crucible.core.batch.records import detect_format, iter_chunks, iter_records
from crucible.core.http import target_client

#: Records per step.
PLAIN_STEP = 100_000


@dataclass
class PlainResult:
    """All output lines in row order, the summary, and how many records were processed."""

    lines: list[dict[str, Any]]
    summary: dict[str, Any]
    records: int


def run_plain(
    path: str,
    processor_name: str,
    options: dict[str, Any],
    *,
    fmt: str | None = None,
    http: httpx.AsyncClient | None = None,
    headers: dict[str, str] | None = None,
    job_id: str = "plain",
) -> PlainResult:
    """:func:`run_plain_async`, blocking until it is done; callable from async code too.

    It runs on an event loop of its own, in a thread of its own, so a client given as
    ``http`` must not be bound to another loop yet. Unset, the run makes one.
    """
    run = run_plain_async(path, processor_name, options, fmt=fmt, http=http, headers=headers, job_id=job_id)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-plain") as pool:
        return pool.submit(asyncio.run, run).result()


async def run_plain_async(
    path: str,
    processor_name: str,
    options: dict[str, Any],
    *,
    fmt: str | None = None,
    http: httpx.AsyncClient | None = None,
    headers: dict[str, str] | None = None,
    job_id: str = "plain",
) -> PlainResult:
    """Profile the input if the processor needs it, then process every record in order.

    Args:
        fmt: ``csv`` or ``jsonl``; unset: from the file's extension.
        http: A client for the ``http`` processor; unset: one for this run only.
        headers: Header values the ``http`` processor sends.
        job_id: Stands for the job's id in idempotency keys.
    """
    fmt_ = detect_format(path, fmt)
    async with contextlib.AsyncExitStack() as stack:
        if http is None and processor_name == HttpProcessor.name:
            http = await stack.enter_async_context(target_client())
        processor = build_processor(processor_name, options, http=http, headers=headers)
        profile: dict[str, Any] = {}
        if processor.needs_profile:
            profile = await asyncio.to_thread(processor.profile, iter_records(path, fmt_))
        lines: list[dict[str, Any]] = []
        aggregates: dict[str, Any] = {}
        records = 0
        context = ChunkContext(job_id=job_id)
        steps = iter_chunks(path, fmt_, size=PLAIN_STEP)
        while (chunk := await asyncio.to_thread(next, steps, None)) is not None:
            output = await processor.process(chunk, profile, context)
            lines += output.lines
            aggregates = processor.merge(aggregates, output.aggregates)
            records += len(chunk.records)
        return PlainResult(lines, processor.summary(aggregates, profile), records)
