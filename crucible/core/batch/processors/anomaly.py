"""``anomaly-detection``: flag records whose numbers lie far from the whole input's.

A first pass over the input (:meth:`AnomalyDetector.profile`) computes each numeric
column's mean, population standard deviation and exact quartiles. Every chunk is then
judged against those global statistics, so a record's flags do not depend on which chunk
it falls in: a chunked job's output equals a single pass's, line for line.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Iterable
from itertools import chain, islice
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crucible.core.batch.processors.base import ChunkContext, ChunkOutput, add_counts, parse_options
from crucible.core.batch.processors.stats import column_numbers, describe
from crucible.core.batch.records import Chunk, MalformedRecordError

NAME = "anomaly-detection"
Method = Literal["zscore", "iqr"]
METHODS: tuple[Method, ...] = ("zscore", "iqr")
DEFAULT_Z_THRESHOLD = 3.0
DEFAULT_IQR_K = 1.5
DEFAULT_ID_COLUMN = "id"
#: Records the profile pass takes at a time: enough for the per-column work to run in C, few
#: enough to be freed before the garbage collector moves them to its oldest generation, whose
#: every collection walks all the objects of the process (tens of milliseconds in a worker).
_PROFILE_BATCH = 2048
#: Bounds that are a hair looser than the z-score threshold pick the candidates the exact
#: test then decides on, so that rounding in the shortcut never drops a flag.
_LOOSENESS = 1e-9


class AnomalyOptions(BaseModel):
    """Options of ``anomaly-detection``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[str] | None = Field(
        None, min_length=1, description="Unset: every column whose values are all numbers, but the id."
    )
    id_column: str | None = Field(None, description='Unset: "id" if the input has that column.')
    z_threshold: float = Field(DEFAULT_Z_THRESHOLD, gt=0, allow_inf_nan=False)
    iqr_k: float = Field(DEFAULT_IQR_K, gt=0, allow_inf_nan=False)
    methods: list[Method] = Field(default_factory=lambda: list(METHODS), min_length=1)


class AnomalyDetector:
    """Flags a record when a number's z-score passes ``z_threshold`` or it lies outside the
    IQR fences ``[q1 - k * iqr, q3 + k * iqr]``; outputs a line per flagged record only."""

    name = NAME
    needs_profile = True

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = parse_options(NAME, AnomalyOptions, options)
        self.columns = list(dict.fromkeys(self.options.columns)) if self.options.columns else None
        self.use_zscore = "zscore" in self.options.methods
        self.use_iqr = "iqr" in self.options.methods

    def profile(self, records: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """Per numeric column: count, mean, population standard deviation (ddof=0), the
        quartiles by linear interpolation (numpy's default) and the IQR fences.

        Missing values (empty or null) are skipped. Without ``columns`` in the options a
        column is numeric when all its present values are numbers; the id column never is.

        Raises:
            MalformedRecordError: a column named in the options holds something else.
        """
        excluded = self.options.id_column or DEFAULT_ID_COLUMN
        # Each batch's numbers are an array of their own, joined at the end: growing one array
        # would copy it again and again.
        values: dict[str, list[array[float]]] = {c: [] for c in self.columns or ()}
        rejected: set[str] = set()
        has_id_column = False
        count = 0
        it = iter(records)
        while batch := list(islice(it, _PROFILE_BATCH)):
            count += len(batch)
            rows = [record for _, record in batch]
            present = dict.fromkeys(chain.from_iterable(rows))
            has_id_column = has_id_column or DEFAULT_ID_COLUMN in present
            candidates = self.columns or [c for c in present if c != excluded and c not in rejected]
            for column in candidates:
                numbers, _, bad = column_numbers([record.get(column) for record in rows])
                if bad is None:
                    values.setdefault(column, []).append(array("d", numbers))
                elif self.columns:
                    row, record = batch[bad]
                    raise MalformedRecordError(row, _not_a_number(column, record[column]))
                else:
                    rejected.add(column)
                    values.pop(column, None)
        id_column = self.options.id_column or (DEFAULT_ID_COLUMN if has_id_column else None)
        stats = {
            column: describe(array("d", b"".join(part.tobytes() for part in parts)), iqr_k=self.options.iqr_k)
            for column, parts in values.items()
            if any(parts)
        }
        return {"records": count, "id_column": id_column, "columns": list(stats), "stats": stats}

    async def process(self, chunk: Chunk, profile: dict[str, Any], context: ChunkContext) -> ChunkOutput:
        return await asyncio.to_thread(self._process, chunk, profile)

    def _process(self, chunk: Chunk, profile: dict[str, Any]) -> ChunkOutput:
        records = chunk.records
        flags: dict[int, list[dict[str, Any]]] = {}
        by_column: dict[str, dict[str, int]] = {}
        for column in profile["columns"]:
            counts = by_column[column] = dict.fromkeys(METHODS, 0)
            stats = profile["stats"][column]
            low, high = self._candidate_bounds(stats)
            values = [record.get(column) for record in records]
            for i, x in _outside(values, low, high, column, chunk.first_row):
                for flag in self._flags(column, x, stats):
                    flags.setdefault(i, []).append(flag)
                    counts[flag["method"]] += 1
        id_column = profile["id_column"]
        lines = [
            {
                "row": chunk.first_row + i,
                "id": records[i].get(id_column) if id_column else None,
                "flags": flags[i],
            }
            for i in sorted(flags)
        ]
        aggregates = {"records": len(records), "flagged": len(lines), "by_column": by_column}
        return ChunkOutput(lines, aggregates)

    def _candidate_bounds(self, stats: dict[str, float]) -> tuple[float, float]:
        """Every value a method flags lies below the first bound or above the second."""
        low, high = -math.inf, math.inf
        if self.use_iqr:
            low, high = stats["lower"], stats["upper"]
        if self.use_zscore and stats["std"] > 0:
            reach = self.options.z_threshold * stats["std"]
            slack = _LOOSENESS * (abs(stats["mean"]) + reach)
            low = max(low, stats["mean"] - reach + slack)
            high = min(high, stats["mean"] + reach - slack)
        return low, high

    def _flags(self, column: str, x: float, stats: dict[str, float]) -> list[dict[str, Any]]:
        found = []
        if self.use_zscore and stats["std"] > 0:
            z = (x - stats["mean"]) / stats["std"]
            if abs(z) > self.options.z_threshold:
                found.append({"column": column, "value": x, "method": "zscore", "score": round(z, 6)})
        if self.use_iqr and not stats["lower"] <= x <= stats["upper"]:
            fence = stats["lower"] if x < stats["lower"] else stats["upper"]
            found.append({"column": column, "value": x, "method": "iqr", "fence": fence})
        return found

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return add_counts(a, b)

    def summary(self, aggregates: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        """The counts, with zeros for columns nothing was flagged in, and each column's thresholds."""
        empty = {
            "records": 0,
            "flagged": 0,
            "by_column": {c: dict.fromkeys(METHODS, 0) for c in profile["columns"]},
        }
        thresholds = {
            column: {
                **{k: stats[k] for k in ("mean", "std", "q1", "q3", "lower", "upper")},
                "z_threshold": self.options.z_threshold,
                "iqr_k": self.options.iqr_k,
            }
            for column, stats in profile["stats"].items()
        }
        return {
            **add_counts(empty, aggregates),
            "methods": list(self.options.methods),
            "thresholds": thresholds,
        }


def _outside(
    values: list[Any], low: float, high: float, column: str, first_row: int
) -> list[tuple[int, float]]:
    """The index and number of each value below ``low`` or above ``high``.

    Raises:
        MalformedRecordError: a present value is not a number.
    """
    numbers, positions, bad = column_numbers(values)
    if bad is not None:
        raise MalformedRecordError(first_row + bad, _not_a_number(column, values[bad]))
    found = [(i, x) for i, x in enumerate(numbers) if x < low or x > high]
    if positions is None:
        return found
    return [(positions[i], x) for i, x in found]


def _not_a_number(column: str, value: Any) -> str:
    return f"column {column!r}: {value!r} is not a number"
