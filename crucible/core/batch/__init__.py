"""Batch processing: read a CSV or JSON Lines input in chunks and run a processor over each.

Plain Python with no Temporal in it. The batch job's workflow and activities drive it:
:func:`~crucible.core.batch.records.scan` and, for processors that need global statistics,
a profile pass first; then, chunk after chunk,
:func:`~crucible.core.batch.records.read_chunk` from the previous chunk's end offset and
:meth:`~crucible.core.batch.processors.Processor.process`.
:func:`~crucible.core.batch.plain.run_plain` is the same work as one plain loop, the
reference a chunked job's output must equal.

MalformedRecordError (a CrucibleError)   a record that cannot be read; names its row
InvalidOptionsError (a ValueError)       a processor's options are wrong; lists where and why
"""

from crucible.core.batch.plain import PlainResult, run_plain, run_plain_async
from crucible.core.batch.processors import (
    PROCESSORS,
    ChunkContext,
    ChunkOutput,
    InvalidOptionsError,
    Processor,
    build_processor,
    validate_options,
)
from crucible.core.batch.records import (
    Chunk,
    Format,
    MalformedRecordError,
    ScanResult,
    detect_format,
    iter_chunks,
    iter_records,
    read_chunk,
    scan,
)

__all__ = [
    "PROCESSORS",
    "Chunk",
    "ChunkContext",
    "ChunkOutput",
    "Format",
    "InvalidOptionsError",
    "MalformedRecordError",
    "PlainResult",
    "Processor",
    "ScanResult",
    "build_processor",
    "detect_format",
    "iter_chunks",
    "iter_records",
    "read_chunk",
    "run_plain",
    "run_plain_async",
    "scan",
    "validate_options",
]
