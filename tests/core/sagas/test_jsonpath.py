"""The JSONPath subset that captures values and checks verify responses."""

from __future__ import annotations

from typing import Any

import pytest

from crucible.core.sagas.jsonpath import JsonPath, JsonPathError, PathNotFoundError

DOC: dict[str, Any] = {
    "id": "o-1",
    "items": [{"sku": "sku-1", "qty": 2}, {"sku": "sku-2", "qty": 1}],
    "meta": {"total.amount": 42, "tags": []},
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("$", DOC),
        ("$.id", "o-1"),
        ("$.items[0].sku", "sku-1"),
        ("$.items[-1].qty", 1),
        ("$.meta['total.amount']", 42),
        ('$["meta"]["tags"]', []),
    ],
)
def test_a_path_finds_its_value(path: str, found: Any) -> None:
    assert JsonPath.parse(path).find(DOC) == found


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("$.missing", "no field 'missing' at $"),
        ("$.items[2]", "no item [2] at $.items"),
        ("$.id.length", "no field 'length' at $.id"),
        ("$.meta[0]", "no item [0] at $.meta"),
    ],
)
def test_a_path_with_nothing_at_it_says_where_it_stopped(path: str, where: str) -> None:
    with pytest.raises(PathNotFoundError, match=where.replace("[", r"\[").replace("$", r"\$")):
        JsonPath.parse(path).find(DOC)


@pytest.mark.parametrize("path", ["id", "$.", "$..id", "$.items[*]", "$[?(@.x)]", "$.a b", "$.items[0"])
def test_paths_outside_the_subset_are_refused(path: str) -> None:
    with pytest.raises(JsonPathError):
        JsonPath.parse(path)
