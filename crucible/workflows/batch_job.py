"""The batch job (seed 002): chunks, checkpoints, retries, resume, progress, one combined output.

The workflow's own state is the job's checkpoint: it holds where the job stands after each
segment, a run of chunks one activity works through in a few seconds. Inside a segment the
activity heartbeats a checkpoint after every chunk and leaves each chunk's output in a part
file, so a crash loses at most the chunk in flight. History grows with segments, not chunks,
and a long job continues as new before it grows large.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from crucible.activities.batch import INPUT_INVALID, BatchActivities
    from crucible.core.batch.models import (
        BatchCheckpoint,
        BatchJobInput,
        BatchJobResult,
        BatchPlan,
        BatchResumePoint,
        CombineOutputInput,
        PrepareBatchInput,
        ProcessChunksInput,
        ProcessChunksResult,
        shown_location,
    )
    from crucible.core.events import EventType
    from crucible.workflows.events import RunEventLog

KIND = "batch"

#: Staging and scanning retry a lost worker or a flaky download; a bad input fails at once.
PREPARE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
#: A segment is retried after a worker crash: it carries on from its last heartbeat. Chunk
#: failures are retried inside the activity (``max_chunk_retries``), not by this policy.
SEGMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=20
)
COMBINE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=10)


@workflow.defn
class BatchJobWorkflow:
    def __init__(self) -> None:
        self.log: RunEventLog | None = None
        self.input: BatchJobInput | None = None
        self.plan: BatchPlan | None = None
        self.checkpoint = BatchCheckpoint()
        self.records_per_second = 0.0
        self.eta_seconds: float | None = None

    @workflow.run
    async def run(self, request: BatchJobInput) -> BatchJobResult:
        if not request.job_id:  # started by a schedule: each run is a job of its own
            request = dataclasses.replace(request, job_id=workflow.info().workflow_id)
        self.input = request
        self.log = RunEventLog(
            kind=KIND, next_seq=request.next_seq, created_at=request.created_at, fence_base=request.fence_base
        )
        return await self.log.guard(lambda: self._run(request))

    async def _run(self, request: BatchJobInput) -> BatchJobResult:
        log = self.log
        assert log is not None
        job = request.request
        if request.next_seq == 1:  # a new run, not one continued as new
            await self._start(request)
        if request.plan is None or (request.resumed_from and request.next_seq == 1):
            # A resumed job scans its (fixed) input again but keeps its first statistics.
            self.plan = await self._prepare(request, request.plan.profile if request.plan else None)
        else:
            self.plan = request.plan
        plan = self.plan
        self.checkpoint = request.checkpoint or BatchCheckpoint(next_offset=plan.data_offset)
        log.run.state = "Processing"
        started = request.processing_started_at or workflow.now()
        records_at_start = (
            request.records_at_start if request.processing_started_at else self.checkpoint.records_done
        )
        segments = 0
        while self.checkpoint.next_chunk < plan.chunks:
            if segments >= request.segments_per_run or workflow.info().is_continue_as_new_suggested():
                await log.flush()
                workflow.continue_as_new(
                    dataclasses.replace(
                        request,
                        plan=plan,
                        checkpoint=self.checkpoint,
                        next_seq=log.next_seq,
                        fence_base=log.next_fence_base,
                        created_at=log.run.created_at,
                        processing_started_at=started,
                        records_at_start=records_at_start,
                    )
                )
            segments += 1
            done = await workflow.execute_activity_method(
                BatchActivities.process_batch_chunks,
                ProcessChunksInput(request.job_id, job, plan, self.checkpoint, budget_s=request.segment_s),
                # A bound no healthy segment meets; the heartbeat is what notices a dead worker.
                start_to_close_timeout=timedelta(hours=6),
                retry_policy=SEGMENT_RETRY,
                task_queue=request.task_queue,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
            )
            self._record_segment(done, started, records_at_start)
            await log.flush()
            if done.stopped_at is not None:
                failed = done.stopped_at
                raise ApplicationError(
                    f"chunk {failed.chunk} (from row {failed.first_row}) failed after "
                    f"{failed.attempts} attempts: {failed.error}",
                    type="ChunkFailed",
                    non_retryable=True,
                )
        log.run.state = "Combining"
        combined = await workflow.execute_activity_method(
            BatchActivities.combine_batch_output,
            CombineOutputInput(request.job_id, job, plan, self.checkpoint.aggregates),
            start_to_close_timeout=timedelta(hours=1),
            retry_policy=COMBINE_RETRY,
            task_queue=request.task_queue,
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
        )
        failed_chunks = self.checkpoint.failed_chunks
        log.run.state = "Completed"
        log.run.summary = {
            **self._progress(),
            "output": combined.output,
            "output_lines": combined.lines,
            "resumed_from": request.resumed_from,
            "summary": combined.summary,
        }
        await log.close(
            EventType.COMPLETE,
            {
                "output": combined.output,
                "output_lines": combined.lines,
                "output_bytes": combined.bytes,
                "records": self.checkpoint.records_done,
                "chunks": plan.chunks,
                "failed_chunks": [dataclasses.asdict(f) for f in failed_chunks],
                "failed_count": self.checkpoint.failed_count,
                "summary": combined.summary,
            },
        )
        return BatchJobResult(
            output=combined.output,
            records=self.checkpoint.records_done,
            chunks=plan.chunks,
            output_lines=combined.lines,
            failed_chunks=failed_chunks,
            summary=combined.summary,
            failed_count=self.checkpoint.failed_count,
        )

    async def _start(self, request: BatchJobInput) -> None:
        log = self.log
        assert log is not None
        job = request.request
        log.run.summary = {"resumed_from": request.resumed_from} if request.resumed_from else {}
        await log.record(
            EventType.REQUESTED,
            {
                "input": shown_location(job.input),
                "processor": job.processor,
                "output": job.output,
                "chunk_size": job.chunk_size,
                "max_chunk_retries": job.max_chunk_retries,
                "on_chunk_failure": job.on_chunk_failure,
                "header_names": job.header_names,
                "job_id": request.job_id,
                "resumed_from": request.resumed_from,
            },
        )
        if request.checkpoint is not None:
            await log.record(
                EventType.RESUMED,
                {
                    "from_run": request.resumed_from,
                    "chunk": request.checkpoint.next_chunk,
                    "records_done": request.checkpoint.records_done,
                    "offset": request.checkpoint.next_offset,
                },
            )

    async def _prepare(self, request: BatchJobInput, profile: dict[str, Any] | None) -> BatchPlan:
        log = self.log
        assert log is not None
        log.run.state = "Preparing"
        try:
            plan = await workflow.execute_activity_method(
                BatchActivities.prepare_batch_input,
                PrepareBatchInput(request.job_id, request.request, profile),
                start_to_close_timeout=timedelta(hours=2),
                retry_policy=PREPARE_RETRY,
                task_queue=request.task_queue,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
            )
        except ActivityError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type == INPUT_INVALID):
                raise
            await log.record(
                EventType.INPUT_INVALID,
                {"reason": str(cause), "input": shown_location(request.request.input)},
            )
            raise ApplicationError(
                f"the input is not usable: {cause}", type="InputInvalid", non_retryable=True
            ) from None
        await log.record(
            EventType.INPUT_SCANNED,
            {
                "path": plan.path,
                "format": plan.format,
                "records": plan.records,
                "chunks": plan.chunks,
                "columns": plan.columns[:100],
                "malformed": plan.malformed,
                "profile": plan.profile,
            },
        )
        return plan

    def _record_segment(self, done: ProcessChunksResult, started: datetime, records_at_start: int) -> None:
        log = self.log
        assert log is not None and self.plan is not None
        self.checkpoint = done.checkpoint
        for resumption in done.resumed:
            log.emit(EventType.RESUMED, {"chunk": resumption.chunk, "attempt": resumption.attempt})
        for failed in done.skipped:
            log.emit(EventType.CHUNK_FAILED, {**dataclasses.asdict(failed), "action": "skipped"})
        elapsed = (workflow.now() - started).total_seconds()
        records = self.checkpoint.records_done - records_at_start
        self.records_per_second = records / elapsed if elapsed > 0 else 0.0
        remaining = self.plan.records - self.checkpoint.records_done
        self.eta_seconds = remaining / self.records_per_second if self.records_per_second > 0 else None
        progress = self._progress()
        log.run.summary = {**log.run.summary, **progress}
        log.emit(
            EventType.PROGRESS,
            {
                **progress,
                "checkpoint": {
                    "chunk": self.checkpoint.next_chunk,
                    "offset": self.checkpoint.next_offset,
                    "aggregates": self.checkpoint.aggregates,
                },
                "processed": done.processed,
                "found_on_disk": done.skipped_on_disk,
            },
        )
        if done.stopped_at is not None:
            log.emit(EventType.CHUNK_FAILED, {**dataclasses.asdict(done.stopped_at), "action": "job failed"})

    def _progress(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "chunks_done": self.checkpoint.next_chunk,
            "chunks_total": plan.chunks if plan else None,
            "records_done": self.checkpoint.records_done,
            "records_total": plan.records if plan else None,
            "records_per_second": round(self.records_per_second, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "failed_chunks": self.checkpoint.failed_count,
        }

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """Chunks and records done and total, records per second and the time left."""
        assert self.log is not None
        return {"state": self.log.run.state, **self._progress()}

    @workflow.query
    def resume_point(self) -> BatchResumePoint:
        """Where a new run would carry this job on from."""
        assert self.input is not None
        return BatchResumePoint(
            job_id=self.input.job_id,
            request=self.input.request,
            plan=self.plan,
            checkpoint=self.checkpoint if self.plan is not None else None,
        )
