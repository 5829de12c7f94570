"""Reading a batch job's input: CSV and JSON Lines files, in chunks that start at byte offsets.

A job counts the records in one fast pass (:func:`scan`), then reads them chunk after chunk
(:func:`read_chunk`), each starting at the byte offset where the one before ended. A job
resumed after a crash therefore seeks straight to its next chunk instead of reading the
records before it again.

Records are numbered from 1 in file order. A CSV header is not a record, nor is a blank
line. CSV is RFC 4180 as Python's :mod:`csv` reads it with ``strict=True``: quoted fields
may hold commas, line breaks and ``""``. Lines end in ``\\n`` or ``\\r\\n``. A UTF-8 byte
order mark at the start of the file is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO, Literal, cast

from crucible.core.batch import csv_records
from crucible.core.batch.csv_records import BOM
from crucible.core.batch.errors import MalformedRecordError

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
#: :func:`scan` takes JSON Lines columns from this many records, and keeps at most this many.
COLUMN_SAMPLE = 1000
MAX_COLUMNS = 1000
#: Lines :func:`scan` reads at a time; a larger step gains nothing and costs memory.
_SCAN_LINES = 65_536
#: Records per step of :func:`iter_records`.
_ITER_CHUNK = 10_000


@dataclass
class Chunk:
    """Consecutive records of the input; ``end_offset`` is where the next chunk starts."""

    index: int
    #: Number of the first record in the file, from 1 (the CSV header is not a record).
    first_row: int
    start_offset: int
    end_offset: int
    records: list[dict[str, Any]]
    #: How the records were read; CSV values are all strings. Set by :func:`read_chunk`.
    format: Format | None = None


@dataclass
class ScanResult:
    """What one pass over the input found: how many records, their columns, where they start."""

    records: int
    #: The CSV header; for JSON Lines the keys of the first records, in first-seen order.
    columns: list[str]
    #: Where the first record starts: after the CSV header (and a byte order mark).
    data_offset: int
    #: Records that cannot be read. Exact for CSV; for JSON Lines, lines that are not
    #: brace-delimited (a line that is but does not parse is found when its chunk is read).
    malformed: int = 0


def detect_format(path: str, explicit: str | None = None) -> Format:
    """The input's format: ``explicit`` if given, else from the file's extension.

    Raises:
        ValueError: ``explicit`` is not a format, or the extension says nothing.
    """
    if explicit is not None:
        if explicit not in FORMATS:
            raise ValueError(f"unknown format {explicit!r}; expected csv or jsonl")
        return cast(Format, explicit)
    extension = os.path.splitext(path)[1].lower()
    if extension in EXTENSIONS:
        return EXTENSIONS[extension]
    known = ", ".join(EXTENSIONS)
    raise ValueError(
        f"cannot tell the format of {os.path.basename(path)!r} from its extension (known: {known}; "
        "compressed files are not read); give the format, csv or jsonl"
    )


def scan(path: str, fmt: Format) -> ScanResult:
    """Count the records in one pass, find the columns and where the first record starts.

    Raises:
        MalformedRecordError: the CSV header cannot be read (row 0).
    """
    with open(path, "rb") as f:
        return _scan_csv(f) if fmt == "csv" else _scan_jsonl(f)


def read_chunk(
    path: str,
    fmt: Format,
    *,
    index: int,
    start_offset: int,
    first_row: int,
    size: int,
    columns: list[str],
) -> Chunk:
    """Read up to ``size`` records from ``start_offset``: a chunk.

    CSV records map ``columns`` (the header from :func:`scan`) to string values; JSON Lines
    records are the parsed objects. Fewer than ``size`` records means the input ended.
    A CSV chunk starts at :attr:`ScanResult.data_offset` or at a chunk's ``end_offset``.

    Raises:
        MalformedRecordError: a record in the chunk cannot be read; ``row`` says which.
    """
    if fmt == "csv" and start_offset == 0:
        raise ValueError("a CSV chunk starts after the header, at the scan's data_offset or later")
    with open(path, "rb") as f:
        if start_offset == 0 and f.read(len(BOM)) == BOM:
            start_offset = len(BOM)
        f.seek(start_offset)
        records, consumed = _read_records(f, fmt, first_row=first_row, size=size, columns=columns)
    return Chunk(index, first_row, start_offset, start_offset + consumed, records, fmt)


def iter_chunks(path: str, fmt: Format, *, size: int = _ITER_CHUNK) -> Iterator[Chunk]:
    """The whole input as consecutive chunks of ``size`` records, from one open file."""
    with open(path, "rb") as f:
        if fmt == "csv":
            columns, offset = csv_records.read_header(f)
        else:
            columns, offset = [], len(BOM) if f.read(len(BOM)) == BOM else 0
        f.seek(offset)
        index, row = 0, 1
        while True:
            records, consumed = _read_records(f, fmt, first_row=row, size=size, columns=columns)
            if not records:
                return
            yield Chunk(index, row, offset, offset + consumed, records, fmt)
            index, row, offset = index + 1, row + len(records), offset + consumed


def iter_records(path: str, fmt: Format) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every record with its row number, for a single pass over the input.

    Raises:
        MalformedRecordError: at the first record that cannot be read.
    """
    for chunk in iter_chunks(path, fmt):
        yield from enumerate(chunk.records, chunk.first_row)


def skip_records(path: str, fmt: Format, *, start_offset: int, count: int) -> int:
    """The offset after ``count`` records from ``start_offset``, counted as :func:`scan` counts
    them: a malformed record is one record. For moving past a chunk that cannot be read."""
    with open(path, "rb") as f:
        f.seek(start_offset)
        seen = consumed = 0
        while seen < count and (lines := list(islice(f, count - seen))):
            if fmt == "csv":
                records, _, took = csv_records.count_records(f, lines, 0)
            else:
                records, took = len(lines) - sum(map(bytes.isspace, lines)), sum(map(len, lines))
            seen += records
            consumed += took
    return start_offset + consumed


def _read_records(
    f: BinaryIO, fmt: Format, *, first_row: int, size: int, columns: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``size`` records from where ``f`` stands, and the bytes they took."""
    if fmt == "csv":
        return csv_records.read_records(f, first_row=first_row, size=size, columns=columns)
    records: list[dict[str, Any]] = []
    consumed = 0
    while len(records) < size and (lines := list(islice(f, size - len(records)))):
        records += _jsonl_records(lines, first_row + len(records))
        consumed += sum(map(len, lines))
    return records, consumed


def _scan_csv(f: BinaryIO) -> ScanResult:
    columns, data_offset = csv_records.read_header(f)
    f.seek(data_offset)
    records = malformed = 0
    while lines := list(islice(f, _SCAN_LINES)):
        counted, bad, _ = csv_records.count_records(f, lines, len(columns))
        records += counted
        malformed += bad
    return ScanResult(records, columns, data_offset, malformed)


# JSON Lines


def _jsonl_records(lines: list[bytes], first_row: int) -> list[dict[str, Any]]:
    loads = json.loads
    try:
        # Decoded here rather than by json.loads, which would also take UTF-16 and UTF-32.
        records = [loads(line.decode()) for line in lines if not line.isspace()]
    except (ValueError, RecursionError):
        records = None
    if records is not None and all(type(record) is dict for record in records):
        return records
    row = first_row
    for line in lines:
        if line.isspace():
            continue
        reason = _jsonl_reason(line)
        if reason is not None:
            raise MalformedRecordError(row, reason)
        row += 1
    raise AssertionError("a JSON Lines batch failed to parse as a whole but every line parses")


def _jsonl_reason(line: bytes) -> str | None:
    """Why the line is not a record, or None if it is one."""
    try:
        # Without its line break, so that an error at the end is at a column of this line.
        value = json.loads(line.decode().rstrip("\r\n"))
    except UnicodeDecodeError:
        return "not valid UTF-8"
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return "not valid JSON: nested too deeply"
    if type(value) is not dict:
        return f"not a JSON object but {_json_kind(value)}"
    return None


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), "null")


def _scan_jsonl(f: BinaryIO) -> ScanResult:
    data_offset = len(BOM) if f.read(len(BOM)) == BOM else 0
    f.seek(data_offset)
    records = malformed = 0
    columns: dict[str, None] = {}
    sampled = 0
    while lines := list(islice(f, _SCAN_LINES)):
        for line in lines:
            text = line.strip()
            if not text:
                continue
            records += 1
            if not (text.startswith(b"{") and text.endswith(b"}")):
                malformed += 1
            elif sampled < COLUMN_SAMPLE:
                sampled += 1
                _add_keys(columns, line)
    return ScanResult(records, list(columns)[:MAX_COLUMNS], data_offset, malformed)


def _add_keys(columns: dict[str, None], line: bytes) -> None:
    try:
        value = json.loads(line.decode())
    except (ValueError, RecursionError):
        return
    if type(value) is dict:
        columns.update(dict.fromkeys(value))
