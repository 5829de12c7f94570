"""Input files for batch jobs: a numeric CSV with planted anomalies, a JSON Lines file of people."""

from __future__ import annotations

import json
import random
from collections.abc import Collection
from pathlib import Path
from typing import Any

from crucible.core.batch.processors import ChunkContext, Processor
from crucible.core.batch.records import detect_format, read_chunk, scan

CSV_COLUMNS = ("id", "amount", "latency_ms", "region", "quantity")
REGIONS = ("eu-west", "eu-north", "us-east", "ap-south")

#: The schema the JSON Lines records are meant to follow; every tenth record breaks it.
PERSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "name", "age", "email"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"},
    },
}


def write_sample_csv(path: Path | str, rows: int, *, seed: int = 7, anomalies: int = 50) -> list[int]:
    """Write ``rows`` records of normal-ish numbers, ``anomalies`` of them far off; their row numbers.

    An anomalous row has an ``amount`` about 40 standard deviations above the mean, far past
    any z-score or IQR threshold, whatever the other rows hold.
    """
    rng = random.Random(seed)
    planted = sorted(rng.sample(range(1, rows + 1), min(anomalies, rows)))
    gauss, uniform = rng.gauss, rng.random
    lines = [
        f"r{row:06d},{gauss(100, 15):.2f},{gauss(250, 40):.1f},{REGIONS[int(uniform() * 4)]},"
        f"{int(uniform() * 10) + 1}\n"
        for row in range(1, rows + 1)
    ]
    for row in planted:
        lines[row - 1] = f"r{row:06d},{700 + 100 * uniform():.2f},{gauss(250, 40):.1f},eu-west,5\n"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        f.writelines(lines)
    return planted


def write_sample_jsonl(
    path: Path | str, rows: int, *, seed: int = 7, bad_rows: Collection[int] = ()
) -> list[int]:
    """Write ``rows`` JSON Lines people; the rows that break :data:`PERSON_SCHEMA`.

    Every tenth record is invalid, in turn a negative age, an age given as a string, or a
    missing email. Each row in ``bad_rows`` is a line that is not JSON at all.
    """
    rng = random.Random(seed)
    invalid: list[int] = []
    with open(path, "w", encoding="utf-8", newline="") as f:
        for row in range(1, rows + 1):
            if row in bad_rows:
                f.write(f"this is not JSON (row {row})\n")
                continue
            record: dict[str, Any] = {
                "id": row,
                "name": f"person {row}",
                "age": rng.randint(18, 90),
                "email": f"p{row}@example.com",
            }
            if row % 10 == 0:
                invalid.append(row)
                breakage = (row // 10) % 3
                if breakage == 0:
                    record["age"] = -record["age"]
                elif breakage == 1:
                    record["age"] = str(record["age"])
                else:
                    del record["email"]
            f.write(json.dumps(record) + "\n")
    return invalid


async def process_in_chunks(
    processor: Processor, path: Path | str, *, size: int, profile: dict[str, Any], job_id: str = "job-1"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Process the input chunk after chunk, as a batch job does: the lines and merged aggregates."""
    fmt = detect_format(str(path))
    found = scan(str(path), fmt)
    lines: list[dict[str, Any]] = []
    aggregates: dict[str, Any] = {}
    offset, row, index = found.data_offset, 1, 0
    while row <= found.records:
        chunk = read_chunk(
            str(path), fmt, index=index, start_offset=offset, first_row=row, size=size, columns=found.columns
        )
        output = await processor.process(chunk, profile, ChunkContext(job_id=job_id))
        lines += output.lines
        aggregates = processor.merge(aggregates, output.aggregates)
        offset, row, index = chunk.end_offset, row + len(chunk.records), index + 1
    return lines, aggregates
