"""Reading CSV and JSON Lines input, in chunks and in one pass, against Python's csv and json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from crucible.core.batch.records import (
    BOM,
    Chunk,
    Format,
    MalformedRecordError,
    detect_format,
    iter_records,
    read_chunk,
    scan,
    skip_records,
)

TRICKY_CSV = (
    "id,name,note\r\n"
    "1,plain,no quotes\r\n"
    '2,"Smith, Jane","she said ""hi"""\r\n'
    '3,multi,"line one\r\nline two\nline three"\r\n'
    "\r\n"
    "4,,empty name\r\n"
    '5,"",""\r\n'
    '6,unicode,"caf\u00e9 \u2603"\r\n'
    '7,"x\n\ny",two newlines\r\n'
    "8,last,no newline at the end"
)


def chunks(path: Path, fmt: Format, size: int) -> list[Chunk]:
    """Read the whole input chunk after chunk, each from the previous one's end offset."""
    found = scan(str(path), fmt)
    out: list[Chunk] = []
    offset, row = found.data_offset, 1
    while row <= found.records:
        chunk = read_chunk(
            str(path),
            fmt,
            index=len(out),
            start_offset=offset,
            first_row=row,
            size=size,
            columns=found.columns,
        )
        assert chunk.start_offset == offset and chunk.first_row == row
        out.append(chunk)
        offset, row = chunk.end_offset, row + len(chunk.records)
    assert offset == path.stat().st_size
    return out


def reference_csv(text: str) -> list[dict[str, str]]:
    """What Python's csv module makes of the text: the baseline for every chunking."""
    return [dict(row) for row in csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))]


def write(tmp_path: Path, name: str, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((BOM if bom else b"") + text.encode())
    return path


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_csv_chunks_equal_the_csv_module(tmp_path: Path, size: int, bom: bool) -> None:
    path = write(tmp_path, "tricky.csv", TRICKY_CSV, bom=bom)
    expected = reference_csv(TRICKY_CSV)
    assert len(expected) == 8

    found = scan(str(path), "csv")
    assert (found.records, found.columns, found.malformed) == (8, ["id", "name", "note"], 0)
    assert found.data_offset == len(b"id,name,note\r\n") + (len(BOM) if bom else 0)
    read = chunks(path, "csv", size)
    assert [r for c in read for r in c.records] == expected
    assert [c.first_row for c in read] == list(range(1, 9, size))
    assert list(iter_records(str(path), "csv")) == list(enumerate(expected, 1))
    assert expected[2]["note"] == "line one\r\nline two\nline three"


def test_csv_batches_with_and_without_quotes_agree(tmp_path: Path) -> None:
    # Long runs of quote-free lines take the fast path, the quoted ones the csv module's.
    lines = [f'{i},"quoted, {i}",x\n' if i % 97 == 0 else f"{i},plain {i},x\n" for i in range(1, 2001)]
    text = "a,b,c\n" + "".join(lines)
    path = write(tmp_path, "mixed.csv", text)
    expected = reference_csv(text)
    for size in (1, 7, 50, 1000, 5000):
        assert [r for c in chunks(path, "csv", size) for r in c.records] == expected
    assert scan(str(path), "csv").records == 2000


def test_a_quoted_header_and_blank_lines_before_it(tmp_path: Path) -> None:
    path = write(tmp_path, "header.csv", '\n"a,1","b\nc"\n1,2\n\n\n')
    found = scan(str(path), "csv")
    assert found.columns == ["a,1", "b\nc"]
    assert found.records == 1
    assert list(iter_records(str(path), "csv")) == [(1, {"a,1": "1", "b\nc": "2"})]


def test_empty_inputs(tmp_path: Path) -> None:
    assert scan(str(write(tmp_path, "empty.csv", "")), "csv").records == 0
    assert scan(str(write(tmp_path, "header.csv", "a,b\n")), "csv").records == 0
    assert scan(str(write(tmp_path, "blank.jsonl", "\n  \n")), "jsonl").records == 0
    assert list(iter_records(str(tmp_path / "header.csv"), "csv")) == []


@pytest.mark.parametrize(
    ("text", "row", "reason"),
    [
        ("a,b\n1,2\n3\n", 2, "expected 2 fields, found 1"),
        ("a,b\n1,2\n3,4,5\n", 2, "expected 2 fields, found 3"),
        ('a,b\n1,2\n3,"4\n5,6\n', 2, "unterminated quoted field"),
        ('a,b\n1,"2"x\n', 1, "',' expected after '\"'"),
        ("a,b\n1,2\n\n3,4\n5,6,\n", 3, "expected 2 fields, found 3"),
        ("a,b\n1,2\n3,\xff\xfe\n", 2, "not valid UTF-8"),
        ("a,b\n1,2\r3,4\n", 1, "a carriage return inside an unquoted field"),
    ],
)
def test_malformed_csv_records_name_their_row(tmp_path: Path, text: str, row: int, reason: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode("latin-1"))
    found = scan(str(path), "csv")
    assert found.malformed == 1
    for size in (1, 1000):
        with pytest.raises(MalformedRecordError) as caught:
            chunks(path, "csv", size)
        assert (caught.value.row, caught.value.reason) == (row, reason)
    with pytest.raises(MalformedRecordError) as caught:
        list(iter_records(str(path), "csv"))
    assert caught.value.row == row


def test_a_duplicate_header_column_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(MalformedRecordError, match="duplicate column names \\['a'\\]") as caught:
        scan(str(write(tmp_path, "dup.csv", "a,b,a\n1,2,3\n")), "csv")
    assert caught.value.row == 0


def test_a_csv_chunk_cannot_start_at_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "a\n1\n")
    with pytest.raises(ValueError, match="after the header"):
        read_chunk(str(path), "csv", index=0, start_offset=0, first_row=1, size=1, columns=["a"])


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_jsonl_chunks_equal_json_loads(tmp_path: Path, size: int) -> None:
    records = [{"id": i, "nested": {"k": [i, None]}, "text": f"line {i}\n\u2603"} for i in range(1, 11)]
    text = (
        "\n".join(json.dumps(r) for r in records[:5])
        + "\n\n   \n"
        + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in records[5:])
    )
    path = write(tmp_path, "people.jsonl", text, bom=True)
    found = scan(str(path), "jsonl")
    assert (found.records, found.columns, found.data_offset, found.malformed) == (
        10,
        ["id", "nested", "text"],
        3,
        0,
    )
    read = chunks(path, "jsonl", size)
    assert [r for c in read for r in c.records] == records
    assert list(iter_records(str(path), "jsonl")) == list(enumerate(records, 1))
    # A JSON Lines chunk may start at offset 0, before the byte order mark.
    first = read_chunk(str(path), "jsonl", index=0, start_offset=0, first_row=1, size=2, columns=[])
    assert first.records == records[:2] and first.start_offset == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not valid JSON: Expecting value at column 1"),
        ("[1, 2]", "not a JSON object but an array"),
        ('"text"', "not a JSON object but a string"),
        ("null", "not a JSON object but null"),
        ('{"a": 1', "not valid JSON: Expecting ',' delimiter at column 8"),
    ],
)
def test_malformed_jsonl_records_name_their_row(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, "bad.jsonl", '{"a": 1}\n\n{"a": 2}\n' + line + '\n{"a": 4}\n')
    for size in (1, 2, 1000):
        with pytest.raises(MalformedRecordError) as caught:
            chunks(path, "jsonl", size)
        assert (caught.value.row, caught.value.reason) == (3, reason)


def test_scan_counts_lines_that_cannot_be_jsonl_objects(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.jsonl", '{"a": 1}\nnot json\n[1]\n{"b": 2}\n')
    found = scan(str(path), "jsonl")
    assert (found.records, found.malformed, found.columns) == (4, 2, ["a", "b"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_skip_records_lands_where_the_next_chunk_starts(tmp_path: Path, fmt: Format) -> None:
    if fmt == "csv":
        path = write(tmp_path, "a.csv", TRICKY_CSV)
    else:
        path = write(tmp_path, "a.jsonl", '{"a": 1}\n\nnot json\n{"a": 3}\n   \n{"a": 4}\n')
    found = scan(str(path), fmt)
    offset = found.data_offset
    for start in range(1, found.records + 1, 2):
        end = skip_records(str(path), fmt, start_offset=offset, count=2)
        if fmt == "csv":
            chunk = read_chunk(
                str(path), fmt, index=0, start_offset=offset, first_row=start, size=2, columns=found.columns
            )
            assert chunk.end_offset == end
        offset = end
    assert offset == path.stat().st_size


def test_detect_format() -> None:
    assert detect_format("/data/rows.CSV") == "csv"
    assert [detect_format(f"x{e}") for e in (".jsonl", ".ndjson", ".json")] == ["jsonl"] * 3
    assert detect_format("/data/rows.txt", "jsonl") == "jsonl"
    with pytest.raises(ValueError, match=r"cannot tell the format of 'rows\.csv\.gz'"):
        detect_format("/data/rows.csv.gz")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        detect_format("rows.csv", "xml")
