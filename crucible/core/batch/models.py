"""The dataclasses a batch job's workflow and activities exchange.

They carry positions, counts and compact statistics only. Records and their
output live on disk: the input where the user put it, each chunk's output in a part
file under the job's folder, the combined output where the user asked for it.
Header values for the ``http`` processor live in the secret store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Failed chunks listed by name in checkpoints, results and events; the rest are counted.
LISTED_FAILURES = 100
#: A chunk's error is cut to this many characters.
MAX_ERROR_CHARS = 500


def shown_location(location: str) -> str:
    """An input as events, logs and memos may show it: a URL without credentials or query.

    Presigned URLs carry their token in the query string; user:password may be in the URL.
    """
    if location.startswith("/"):  # a path, "//" and brackets included: not a URL to split
        return location
    parts = urlsplit(location)
    if parts.scheme not in ("http", "https"):
        return location
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


@dataclass
class BatchJobRequest:
    """What the user asked for. ``headers_secret`` refers to header values; names only here."""

    input: str
    processor: str
    output: str
    format: str | None = None
    chunk_size: int = 10_000
    max_chunk_retries: int = 3
    on_chunk_failure: str = "fail"
    options: dict[str, Any] = field(default_factory=dict)
    headers_secret: str | None = None
    header_names: list[str] = field(default_factory=list)
    #: The first retry of a failing chunk waits this long; each next one twice as long.
    chunk_retry_delay_s: float = 1.0
    #: An input URL with credentials or a query (a presigned URL, say) is a secret: ``input``
    #: then shows it without them, and this refers to the whole URL.
    input_secret: str | None = None


@dataclass
class BatchPlan:
    """What the first pass found: where the records are, how many, and global statistics."""

    path: str
    format: str
    records: int
    chunks: int
    columns: list[str]
    data_offset: int
    profile: dict[str, Any] = field(default_factory=dict)
    malformed: int = 0


@dataclass
class FailedChunk:
    chunk: int
    first_row: int
    error: str
    attempts: int


@dataclass
class BatchCheckpoint:
    """Where a job stands: everything before ``next_chunk`` is done and its output on disk.

    It travels with every segment and heartbeat, so it stays small: ``failed_chunks`` lists
    the first :data:`LISTED_FAILURES` chunks that failed, ``failed_count`` counts them all.
    """

    next_chunk: int = 0
    next_offset: int = 0
    records_done: int = 0
    aggregates: dict[str, Any] = field(default_factory=dict)
    failed_chunks: list[FailedChunk] = field(default_factory=list)
    failed_count: int = 0

    def add_failure(self, failure: FailedChunk) -> None:
        self.failed_count += 1
        if len(self.failed_chunks) < LISTED_FAILURES:
            self.failed_chunks.append(failure)


@dataclass
class BatchJobInput:
    """A batch job run, fresh or carried on (continue-as-new, or a resume of a failed run).

    ``job_id`` is the id of the job's first run: its part files live under it, so a resumed
    run reuses the output of the chunks done before. Empty, it is the run's own id (a run
    started by a schedule, whose arguments are the same every time).
    """

    job_id: str
    request: BatchJobRequest
    resumed_from: str | None = None
    plan: BatchPlan | None = None
    checkpoint: BatchCheckpoint | None = None
    #: Continue-as-new after this many segments, to keep history bounded.
    segments_per_run: int = 200
    segment_s: float = 5.0
    heartbeat_timeout_s: float = 10.0
    task_queue: str | None = None
    # Carried across continue-as-new:
    next_seq: int = 1
    created_at: datetime | None = None
    processing_started_at: datetime | None = None
    records_at_start: int = 0
    fence_base: int = 0


@dataclass
class BatchJobResult:
    output: str
    records: int
    chunks: int
    output_lines: int
    failed_chunks: list[FailedChunk]
    summary: dict[str, Any]
    failed_count: int = 0


@dataclass
class PrepareBatchInput:
    job_id: str
    request: BatchJobRequest
    #: Statistics of an earlier pass to keep (a resumed job keeps the thresholds it started with).
    profile: dict[str, Any] | None = None


@dataclass
class ProcessChunksInput:
    job_id: str
    request: BatchJobRequest
    plan: BatchPlan
    start: BatchCheckpoint
    #: Stop after the chunk that ends past this many seconds, so the workflow can record progress.
    budget_s: float = 5.0


@dataclass
class Resumption:
    """A retried activity picked up from its last heartbeat, or from part files on disk."""

    attempt: int
    chunk: int


@dataclass
class ProcessChunksResult:
    checkpoint: BatchCheckpoint
    processed: int
    skipped_on_disk: int = 0
    resumed: list[Resumption] = field(default_factory=list)
    #: Set when a chunk failed for good and the job must stop (``on_chunk_failure: fail``).
    stopped_at: FailedChunk | None = None
    #: Chunks this segment skipped after they failed for good (the first ones, if many).
    skipped: list[FailedChunk] = field(default_factory=list)


@dataclass
class CombineOutputInput:
    job_id: str
    request: BatchJobRequest
    plan: BatchPlan
    aggregates: dict[str, Any]


@dataclass
class CombineOutputResult:
    output: str
    lines: int
    bytes: int
    summary: dict[str, Any]


@dataclass
class BatchResumePoint:
    """What a new run needs to carry on a job from where this run stopped."""

    job_id: str
    request: BatchJobRequest
    plan: BatchPlan | None
    checkpoint: BatchCheckpoint | None
