"""CSV reading for :mod:`crucible.core.batch.records`: whole lines split fast, the rest by :mod:`csv`.

Lines are read in bulk. While a batch of lines holds no quote (nor anything else the csv
module treats specially), splitting each line on commas is exactly what the module would
do, at a fraction of the cost. Otherwise the batch goes through :func:`csv.reader`, which
pulls further lines from the file while a quoted field spans them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import islice, repeat
from typing import Any, BinaryIO

from crucible.core.batch.errors import MalformedRecordError

BOM = b"\xef\xbb\xbf"


def read_records(
    f: BinaryIO, *, first_row: int, size: int, columns: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``size`` records from where ``f`` stands, as ``columns`` to values, and their bytes.

    Raises:
        MalformedRecordError: a record cannot be read.
    """
    records: list[dict[str, Any]] = []
    consumed = 0
    # A record is at least one line, so this many lines never overshoot the chunk.
    while len(records) < size and (lines := list(islice(f, size - len(records)))):
        plain = plain_records(lines, columns)
        if plain is not None:
            records += plain
            consumed += sum(map(len, lines))
            continue
        feed = LineFeed(f, lines)
        for row, fields in parse_records(feed, first_row + len(records)):
            if isinstance(fields, str):
                raise MalformedRecordError(row, fields)
            if len(fields) != len(columns):
                raise MalformedRecordError(row, f"expected {len(columns)} fields, found {len(fields)}")
            records.append(dict(zip(columns, fields, strict=True)))
        consumed += feed.consumed
    return records, consumed


class LineFeed:
    """The lines a :func:`csv.reader` parses: a batch, plus those a record spilling past it needs.

    The reader asks for a line only while the record it parses needs one, so after each
    record ``consumed`` is the number of bytes up to that record's end.
    """

    def __init__(self, f: BinaryIO, lines: list[bytes], *, open_ended: bool = False) -> None:
        self._f = f
        self._lines = lines
        self._next = 0
        self._open_ended = open_ended
        self.consumed = 0
        #: Set before each record: a record that starts after the batch is not this feed's.
        self.between_records = True

    def __iter__(self) -> LineFeed:
        return self

    def __next__(self) -> str:
        if self._next < len(self._lines):
            line = self._lines[self._next]
            self._next += 1
        elif self.between_records and not self._open_ended:
            raise StopIteration
        else:
            line = self._f.readline()
            if not line:
                raise StopIteration
        self.between_records = False
        self.consumed += len(line)
        try:
            return line.decode()
        except UnicodeDecodeError:
            raise _NotUtf8 from None


class _NotUtf8(Exception):
    pass


def parse_records(feed: LineFeed, first_row: int) -> Iterator[tuple[int, list[str] | str]]:
    """Each record of the feed with its row number: its fields, or why it cannot be read."""
    reader = csv.reader(feed, strict=True)
    row = first_row
    while True:
        feed.between_records = True
        try:
            fields: list[str] | str = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields = _reason(str(exc))
        except _NotUtf8:
            fields = "not valid UTF-8"
        if fields != []:  # a blank line
            yield row, fields
            row += 1


def _reason(message: str) -> str:
    if message == "unexpected end of data":
        return "unterminated quoted field"
    if message.startswith("new-line character"):
        return "a carriage return inside an unquoted field"
    return message


def plain_records(lines: list[bytes], columns: list[str]) -> list[dict[str, Any]] | None:
    """The records of lines where a comma split is exactly what the csv module would do.

    None when it is not (quotes, stray carriage returns, bad UTF-8) or when a line
    has the wrong number of fields: the careful path then parses or reports them.
    """
    blob = b"".join(lines)
    if b'"' in blob:
        return None
    try:
        text = blob.decode()
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    try:
        return [dict(zip(columns, line.split(","), strict=True)) for line in text.split("\n") if line]
    except ValueError:
        return None


def read_header(f: BinaryIO) -> tuple[list[str], int]:
    """The CSV header's columns and the offset just after it; ``f`` may stand anywhere."""
    f.seek(0)
    start = len(BOM) if f.read(len(BOM)) == BOM else 0
    f.seek(start)
    feed = LineFeed(f, [], open_ended=True)
    for _, fields in parse_records(feed, 0):
        if isinstance(fields, str):
            raise MalformedRecordError(0, f"header: {fields}")
        duplicates = sorted({name for name in fields if fields.count(name) > 1})
        if duplicates:
            raise MalformedRecordError(0, f"header: duplicate column names {duplicates}")
        return fields, start + feed.consumed
    return [], start + feed.consumed


def count_records(f: BinaryIO, lines: list[bytes], width: int) -> tuple[int, int, int]:
    """The records in ``lines`` (and in the lines a record spilling past them takes from ``f``),
    how many are malformed, and the bytes they take."""
    blob = b"".join(lines)
    if plain_bytes(blob):
        blank = lines.count(b"\n") + lines.count(b"\r\n")
        counts = list(map(bytes.count, lines, repeat(b",")))
        well_formed = counts.count(width - 1) - (blank if width == 1 else 0)
        return len(lines) - blank, len(lines) - blank - well_formed, len(blob)
    feed = LineFeed(f, lines)
    records = malformed = 0
    for _, fields in parse_records(feed, 1):
        records += 1
        malformed += isinstance(fields, str) or len(fields) != width
    return records, malformed, feed.consumed


def plain_bytes(blob: bytes) -> bool:
    """Whether every line of ``blob`` is one record whose fields a comma split finds."""
    if b'"' in blob or blob.count(b"\r") != blob.count(b"\r\n"):
        return False
    try:
        blob.decode()
    except UnicodeDecodeError:
        return False
    return True
