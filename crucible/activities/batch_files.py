"""A batch job's files: the part file of each chunk, and the combined output.

Each finished chunk leaves one part file, ``<work_dir>/<job_id>/parts/<chunk>.jsonl``:
a first line with the chunk's position and partial aggregates, then its output lines.
It is written to a temporary name and renamed, so a part file that exists is complete.
Part files are the output so far; a retried or resumed job reads them back rather than
process the chunk again. The combined output is written once, by a rename, so a reader
never sees half of it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class PartMeta:
    """The first line of a part file."""

    chunk: int
    first_row: int
    end_offset: int
    records: int
    aggregates: dict[str, Any]
    #: Set when the chunk failed for good and was skipped: it has no output lines.
    error: str | None = None
    attempts: int = 1


class JobFiles:
    def __init__(self, work_dir: Path, job_id: str) -> None:
        self.root = work_dir / job_id
        self.parts = self.root / "parts"

    def part(self, chunk: int) -> Path:
        return self.parts / f"{chunk:08d}.jsonl"

    def read_meta(self, chunk: int) -> PartMeta | None:
        """The chunk's part file header, or None when the chunk is not done."""
        try:
            with self.part(chunk).open("rb") as f:
                return PartMeta(**json.loads(f.readline()))
        except FileNotFoundError:
            return None

    def write_part(self, meta: PartMeta, lines: Iterable[dict[str, Any]]) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        final = self.part(meta.chunk)
        tmp = final.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(meta.__dict__, separators=(",", ":")))
            f.write("\n")
            for line in lines:
                f.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def combine(self, chunks: int, output: Path) -> tuple[int, int]:
        """Concatenate every chunk's output lines into ``output`` at once; (lines, bytes)."""
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.{self.root.name}.tmp")
        lines = 0
        with tmp.open("wb") as out:
            for chunk in range(chunks):
                try:
                    part = self.part(chunk).open("rb")
                except FileNotFoundError:
                    raise MissingPartError(chunk) from None
                with part:
                    part.readline()  # its header
                    for line in part:
                        out.write(line)
                        lines += 1
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(tmp, output)
        _fsync_dir(output.parent)
        return lines, size

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class MissingPartError(Exception):
    def __init__(self, chunk: int) -> None:
        super().__init__(f"the output of chunk {chunk} is missing from the job's folder")
        self.chunk = chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def skip_records(path: str, fmt: str, start_offset: int, count: int) -> int:
    """The byte offset after ``count`` records from ``start_offset``, without parsing them.

    A chunk that failed for good is skipped this way: its records may not parse at all.
    CSV records end at a newline outside quotes; JSON Lines records at any non-blank line.
    """
    with open(path, "rb") as f:
        f.seek(start_offset)
        offset = start_offset
        seen = 0
        open_quote = False
        while seen < count:
            line = f.readline()
            if not line:
                break
            offset += len(line)
            if fmt == "csv":
                if line.count(b'"') % 2:
                    open_quote = not open_quote
                if not open_quote and line.strip():
                    seen += 1
            elif line.strip():
                seen += 1
        return offset
