"""Numbers out of record values, and the statistics anomaly detection compares them with."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from itertools import repeat
from operator import mul, sub
from typing import Any

#: The value types that may hold a number: CSV strings, JSON numbers. Not ``bool``.
NUMBER_TYPES = frozenset({str, int, float})


def is_missing(value: Any) -> bool:
    return value is None or value == ""


def as_number(value: Any) -> float | None:
    """The finite number ``value`` holds, or None. ``"nan"``, ``"inf"`` and ``True`` hold none."""
    if type(value) not in NUMBER_TYPES:
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def column_numbers(values: list[Any]) -> tuple[list[float], list[int] | None, int | None]:
    """The numbers among ``values``, where they stand, and where the first non-number stands.

    Missing values (empty or null) are skipped. The positions are None when no value is
    missing: then the numbers stand where the values do. The common case, every value present
    and numeric, converts in one C-level call.
    """
    if None not in values and "" not in values and NUMBER_TYPES.issuperset(map(type, values)):
        try:
            numbers = list(map(float, values))
        except (ValueError, OverflowError):
            pass
        else:
            # A sum that is not finite is rare enough to check the values one by one.
            if math.isfinite(sum(numbers)) or all(map(math.isfinite, numbers)):
                return numbers, None, None
    numbers = []
    positions: list[int] = []
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        number = as_number(value)
        if number is None:
            return numbers, positions, i
        numbers.append(number)
        positions.append(i)
    return numbers, positions, None


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating linearly between order statistics.

    This is numpy's default (``method="linear"``) to the last bit: numpy interpolates
    from the upper neighbour when the fraction is at least one half.
    """
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    low, high = ordered[below], ordered[above]
    if fraction >= 0.5:
        return high - (high - low) * (1 - fraction)
    return low + (high - low) * fraction


def describe(values: array[float], *, iqr_k: float) -> dict[str, float]:
    """Count, mean, population standard deviation (ddof=0), quartiles and IQR fences."""
    count = len(values)
    mean = math.fsum(values) / count
    std = math.sqrt(math.fsum(_squared_deviations(values, mean)) / count)
    # Sorted last: the sums run several times faster over the values in the order they were
    # made, which is the order of their objects in memory.
    ordered = sorted(values)
    q1, q3 = quantile(ordered, 0.25), quantile(ordered, 0.75)
    spread = q3 - q1
    return {
        "count": count,
        "mean": mean,
        "std": std,
        "q1": q1,
        "q3": q3,
        "lower": q1 - iqr_k * spread,
        "upper": q3 + iqr_k * spread,
    }


def _squared_deviations(values: array[float], mean: float) -> map[float]:
    deviations = list(map(sub, values, repeat(mean)))
    return map(mul, deviations, deviations)
