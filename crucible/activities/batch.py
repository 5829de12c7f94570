"""Batch activities: staging and scanning the input, processing chunks, combining the output.

They run on the batch task queue, apart from the HTTP-bound QA work. One activity works
through many chunks and heartbeats a checkpoint after each; a retried activity carries on
from its last heartbeat, then from the part files of chunks that finished after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, cast

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.batch_files import JobFiles, MissingPartError, PartMeta
from crucible.activities.heartbeats import Heartbeat
from crucible.core.batch.models import (
    LISTED_FAILURES,
    MAX_ERROR_CHARS,
    BatchCheckpoint,
    BatchPlan,
    CombineOutputInput,
    CombineOutputResult,
    FailedChunk,
    PrepareBatchInput,
    ProcessChunksInput,
    ProcessChunksResult,
    Resumption,
    shown_location,
)
from crucible.core.batch.processors import Processor, build_processor
from crucible.core.batch.processors.base import ChunkContext
from crucible.core.batch.records import (
    Format,
    MalformedRecordError,
    detect_format,
    iter_records,
    read_chunk,
    scan,
    skip_records,
)
from crucible.core.paths import PathPolicy
from crucible.core.secrets import SecretStore
from crucible.core.targets import TargetRefused, refusal_in

INPUT_INVALID = "InputInvalid"
INPUT_CHANGED = "InputChanged"
#: A chunk retry never waits longer than this.
MAX_RETRY_DELAY_S = 60.0


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INPUT_INVALID, non_retryable=True)


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _checkpoint_of(data: dict[str, Any]) -> BatchCheckpoint:
    failed = [FailedChunk(**f) for f in data.get("failed_chunks", [])]
    return BatchCheckpoint(**{**data, "failed_chunks": failed})


class BatchActivities:
    def __init__(
        self, work_dir: Path, client: httpx.AsyncClient, secrets: SecretStore, *, paths: PathPolicy
    ) -> None:
        self.work_dir = work_dir
        self.client = client
        self.secrets = secrets
        #: What jobs may read and write; the API checks too, but workers may be set up apart.
        self.paths = paths

    def files(self, job_id: str) -> JobFiles:
        return JobFiles(self.work_dir, job_id)

    async def _processor(self, request: Any, *, with_headers: bool = True) -> Processor:
        headers = None
        if with_headers and request.headers_secret:
            headers = await self.secrets.get(request.headers_secret)
        return build_processor(request.processor, request.options, http=self.client, headers=headers)

    @activity.defn
    async def prepare_batch_input(self, request: PrepareBatchInput) -> BatchPlan:
        """Stage the input (download a URL), count its records and, for processors that need
        global statistics, compute them in a first pass over the whole input."""
        job = request.request
        try:
            fmt = detect_format(job.input.split("?", 1)[0], job.format)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        for path in (job.output,) if is_url(job.input) else (job.input, job.output):
            if (reason := self.paths.problem(path)) is not None:
                raise _invalid(reason)
        output = Path(job.output)
        if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
            raise _invalid(f"output: the folder {str(output.parent)!r} does not exist or is not writable")
        with Heartbeat().running():
            if is_url(job.input):
                url = await self.secrets.get(job.input_secret) if job.input_secret else job.input
                path = await self._download(url, self.files(request.job_id).root / f"input.{fmt}")
            else:
                path = job.input
                if not await asyncio.to_thread(_readable, path):
                    raise _invalid(f"input: {path!r} is not a readable file on this worker")
            try:
                found = await asyncio.to_thread(scan, path, fmt)
            except MalformedRecordError as exc:
                raise _invalid(f"input: row {exc.row}: {exc.reason}") from None
            profile = request.profile
            if profile is None:
                processor = await self._processor(job, with_headers=False)
                profile = {}
                if processor.needs_profile:
                    try:
                        profile = await asyncio.to_thread(processor.profile, iter_records(path, fmt))
                    except MalformedRecordError as exc:
                        raise _invalid(f"input: row {exc.row}: {exc.reason}") from None
        return BatchPlan(
            path=path,
            format=fmt,
            records=found.records,
            chunks=math.ceil(found.records / job.chunk_size),
            columns=found.columns,
            data_offset=found.data_offset,
            profile=profile,
            malformed=found.malformed,
        )

    async def _download(self, url: str, target: Path) -> str:
        shown = shown_location(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        try:
            async with self.client.stream("GET", url, timeout=60.0, follow_redirects=True) as response:
                if response.status_code >= 400:
                    message = f"input: fetching {shown} answered {response.status_code}"
                    raise ApplicationError(
                        message, type=INPUT_INVALID, non_retryable=response.status_code < 500
                    )
                with tmp.open("wb") as f:
                    async for data in response.aiter_bytes():
                        f.write(data)
        except TargetRefused as exc:  # names the origin only, never the path or query
            raise ApplicationError(f"input: {exc.summary}", type=INPUT_INVALID, non_retryable=True) from None
        except httpx.HTTPError as exc:
            # Not the exception itself: its text may hold the whole URL.
            raise ApplicationError(
                f"input: fetching {shown} failed: {type(exc).__name__}", type=INPUT_INVALID
            ) from None
        os.replace(tmp, target)
        return str(target)

    @activity.defn
    async def process_batch_chunks(self, request: ProcessChunksInput) -> ProcessChunksResult:
        """Process chunks from ``request.start`` until the time budget is spent or the input ends.

        After each chunk its output goes to a part file and the checkpoint to a heartbeat.
        A chunk that fails is retried with backoff, ``max_chunk_retries`` times; then it is
        recorded and skipped, or the activity stops there, as the job asks.
        """
        info = activity.info()
        job, plan = request.request, request.plan
        files = self.files(request.job_id)
        checkpoint = request.start
        resumed: list[Resumption] = []
        if info.heartbeat_details:
            checkpoint = _checkpoint_of(info.heartbeat_details[0])
        if info.attempt > 1:  # the last attempt died (its worker, say): carry on where it got to
            resumed.append(Resumption(attempt=info.attempt, chunk=checkpoint.next_chunk))
            activity.logger.info("resuming at chunk %d (attempt %d)", checkpoint.next_chunk, info.attempt)
        if not await asyncio.to_thread(_starts_a_record, plan.path, checkpoint.next_offset, plan.data_offset):
            raise ApplicationError(
                f"the input changed before the checkpoint: byte {checkpoint.next_offset} no longer "
                "starts a record; rows before the checkpoint must stay as they were (start a new job)",
                type=INPUT_CHANGED,
                non_retryable=True,
            )
        processor = await self._processor(job)
        context = ChunkContext(job_id=request.job_id)
        deadline = time.monotonic() + request.budget_s
        processed = on_disk = 0
        stopped: FailedChunk | None = None
        skipped: list[FailedChunk] = []
        with Heartbeat().running() as heartbeat:
            while checkpoint.next_chunk < plan.chunks and time.monotonic() < deadline:
                index = checkpoint.next_chunk
                meta = files.read_meta(index)
                if meta is not None and meta.start_offset != checkpoint.next_offset:
                    meta = None  # left by a run over another version of the input
                if meta is None:
                    meta = await self._process_chunk(processor, context, job, plan, checkpoint, files)
                    processed += 1
                else:  # finished by an attempt that died before its heartbeat said so
                    on_disk += 1
                if meta.error is not None:
                    failure = FailedChunk(index, meta.first_row, meta.error, meta.attempts)
                    if job.on_chunk_failure == "fail":
                        stopped = failure
                        break
                    checkpoint.add_failure(failure)
                    if len(skipped) < LISTED_FAILURES:
                        skipped.append(failure)
                checkpoint = dataclasses.replace(
                    checkpoint,
                    next_chunk=index + 1,
                    next_offset=meta.end_offset,
                    records_done=checkpoint.records_done + meta.records,
                    aggregates=processor.merge(checkpoint.aggregates, meta.aggregates),
                )
                heartbeat.now(dataclasses.asdict(checkpoint))
        return ProcessChunksResult(
            checkpoint=checkpoint,
            processed=processed,
            skipped_on_disk=on_disk,
            resumed=resumed,
            stopped_at=stopped,
            skipped=skipped,
        )

    async def _process_chunk(
        self,
        processor: Processor,
        context: ChunkContext,
        job: Any,
        plan: BatchPlan,
        at: BatchCheckpoint,
        files: JobFiles,
    ) -> PartMeta:
        index = at.next_chunk
        first_row = index * job.chunk_size + 1
        start = at.next_offset
        size = min(job.chunk_size, plan.records - index * job.chunk_size)
        attempts = 0
        while True:
            attempts += 1
            try:
                chunk = await asyncio.to_thread(
                    read_chunk,
                    plan.path,
                    cast(Format, plan.format),
                    index=index,
                    start_offset=start,
                    first_row=first_row,
                    size=size,
                    columns=plan.columns,
                )
                output = await processor.process(chunk, plan.profile, context)
            except Exception as exc:
                refusal = refusal_in(exc)  # the target policy's: trying again would be refused again
                if refusal is not None:
                    reason = refusal.summary[:MAX_ERROR_CHARS]
                else:
                    reason = (
                        f"row {exc.row}: {exc.reason}" if isinstance(exc, MalformedRecordError) else repr(exc)
                    )[:MAX_ERROR_CHARS]
                if attempts > job.max_chunk_retries or refusal is not None:
                    activity.logger.warning(
                        "chunk %d failed for good after %d attempts: %s", index, attempts, reason
                    )
                    meta = PartMeta(
                        index, first_row, -1, 0, {}, error=reason, attempts=attempts, start_offset=start
                    )
                    if job.on_chunk_failure == "skip":  # go past its records, counted as scan counted them
                        meta.end_offset = await asyncio.to_thread(
                            skip_records, plan.path, cast(Format, plan.format), start_offset=start, count=size
                        )
                        await asyncio.to_thread(files.write_part, meta, [])
                    return meta
                delay = min(MAX_RETRY_DELAY_S, job.chunk_retry_delay_s * 2 ** (attempts - 1))
                activity.logger.info("chunk %d failed (%s); retrying in %.1f s", index, reason, delay)
                await asyncio.sleep(delay)
                continue
            meta = PartMeta(
                chunk=index,
                first_row=first_row,
                end_offset=chunk.end_offset,
                records=len(chunk.records),
                aggregates=output.aggregates,
                attempts=attempts,
                start_offset=start,
            )
            await asyncio.to_thread(files.write_part, meta, output.lines)
            return meta

    @activity.defn
    async def combine_batch_output(self, request: CombineOutputInput) -> CombineOutputResult:
        """Write the job's output from its part files at once, then free the job's folder."""
        files = self.files(request.job_id)
        output = Path(request.request.output)
        processor = await self._processor(request.request, with_headers=False)
        summary = processor.summary(request.aggregates, request.plan.profile)
        combined = await asyncio.to_thread(files.combined)
        if combined is not None:  # by an attempt that died before it could say so
            return CombineOutputResult(str(output), *combined, summary)
        try:
            with Heartbeat().running():
                lines, size = await asyncio.to_thread(files.combine, request.plan.chunks, output)
        except MissingPartError as exc:
            raise ApplicationError(str(exc), type="OutputIncomplete", non_retryable=True) from None
        await asyncio.to_thread(files.mark_combined, lines, size)
        return CombineOutputResult(str(output), lines, size, summary)


def _readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def _starts_a_record(path: str, offset: int, data_offset: int) -> bool:
    """Whether ``offset`` still begins a record: right after the header, or after a line's end."""
    if offset <= data_offset:
        return True
    with open(path, "rb") as f:
        f.seek(offset - 1)
        return f.read(1) == b"\n"
