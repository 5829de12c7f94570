"""Quartiles by linear interpolation, and numbers read out of record values."""

from __future__ import annotations

from array import array

import pytest

from crucible.core.batch.processors.stats import as_number, column_numbers, describe, quantile


@pytest.mark.parametrize(
    ("values", "q1", "q3"),
    [
        # position (n - 1) * q; q1 of ten values: 3 + 0.25 * (4 - 3); q3: 7 + 0.75 * (8 - 7)
        (list(range(1, 11)), 3.25, 7.75),
        # positions 1 and 3 fall on order statistics
        ([7, 1, 3, 15, 2], 2.0, 7.0),
        # q1 at 1.25: 2 + 0.25 * (4 - 2); q3 at 3.75: 8 + 0.75 * (16 - 8)
        ([32, 16, 8, 4, 2, 1], 2.5, 14.0),
        ([5.0], 5.0, 5.0),
    ],
)
def test_quartiles_interpolate_linearly_between_order_statistics(
    values: list[float], q1: float, q3: float
) -> None:
    ordered = sorted(values)
    assert (quantile(ordered, 0.25), quantile(ordered, 0.75)) == (q1, q3)


def test_describe_uses_the_population_standard_deviation() -> None:
    stats = describe(array("d", [2, 4, 4, 4, 5, 5, 7, 9]), iqr_k=1.5)
    assert (stats["count"], stats["mean"], stats["std"]) == (8, 5.0, 2.0)
    assert (stats["q1"], stats["q3"]) == (4.0, 5.5)
    assert (stats["lower"], stats["upper"]) == (4.0 - 1.5 * 1.5, 5.5 + 1.5 * 1.5)


def test_numbers_out_of_record_values() -> None:
    assert [as_number(v) for v in ("1.5", " 2 ", 3, 4.0)] == [1.5, 2.0, 3.0, 4.0]
    assert [as_number(v) for v in ("nan", "inf", "x", True, None, [1])] == [None] * 6
    assert column_numbers(["1", "2.5"]) == ([1.0, 2.5], None, None)
    assert column_numbers(["1", "", None, 4]) == ([1.0, 4.0], [0, 3], None)
    assert column_numbers(["1", "", "NaN", "2"])[2] == 2
    assert column_numbers([1e308, 1e308]) == ([1e308, 1e308], None, None)
