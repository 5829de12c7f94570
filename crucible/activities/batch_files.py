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
import uuid
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
    #: Where the chunk began in the input: a part file from another input is not this chunk's.
    start_offset: int = -1


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
        tmp = _temporary(final)
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
        tmp = _temporary(output)
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

    @property
    def marker(self) -> Path:
        return self.root / "combined.json"

    def mark_combined(self, lines: int, size: int) -> None:
        """Say the output is written, then free the space: only this small marker stays.

        A retried combine that finds the marker answers from it, rather than mistake an
        older file at the output's path for this job's.
        """
        tmp = _temporary(self.marker)
        tmp.write_text(json.dumps({"lines": lines, "bytes": size}))
        os.replace(tmp, self.marker)
        for entry in self.root.iterdir():
            if entry != self.marker:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)

    def combined(self) -> tuple[int, int] | None:
        """(lines, bytes) of the output, if it was written already."""
        try:
            found = json.loads(self.marker.read_text())
        except FileNotFoundError:
            return None
        return int(found["lines"]), int(found["bytes"])


class MissingPartError(Exception):
    def __init__(self, chunk: int) -> None:
        super().__init__(f"the output of chunk {chunk} is missing from the job's folder")
        self.chunk = chunk


def _temporary(final: Path) -> Path:
    """A name beside ``final`` that no other writer uses: two attempts may overlap for a moment."""
    return final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
