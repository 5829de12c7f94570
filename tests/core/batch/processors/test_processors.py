"""Processors by name: their options checked with locations, and built."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crucible.core.batch.processors import PROCESSORS, InvalidOptionsError, build_processor, validate_options


def test_every_processor_builds_with_its_defaults(http: httpx.AsyncClient) -> None:
    required: dict[str, dict[str, Any]] = {
        "schema-validation": {"schema": {}},
        "http": {"url": "https://a.example/"},
    }
    for name in PROCESSORS:
        assert validate_options(name, required.get(name, {})) == []
        assert build_processor(name, required.get(name, {}), http=http).name == name


def test_processors_are_built_by_name_with_checked_options(http: httpx.AsyncClient) -> None:
    assert validate_options("sorting", {}) == [
        ((), "unknown processor 'sorting'; expected one of anomaly-detection, schema-validation, http")
    ]
    assert validate_options("anomaly-detection", {"z_threshold": 0, "methods": ["mad"]}) == [
        (("z_threshold",), "Input should be greater than 0"),
        (("methods", 0), "Input should be 'zscore' or 'iqr'"),
    ]
    with pytest.raises(
        InvalidOptionsError, match="anomaly-detection: iqr_k: Input should be greater than 0"
    ) as caught:
        build_processor("anomaly-detection", {"iqr_k": -1})
    assert caught.value.errors == [(("iqr_k",), "Input should be greater than 0")]
    with pytest.raises(InvalidOptionsError, match=r"body\.x: unknown placeholder"):
        build_processor("http", {"url": "https://a.example/", "body": {"x": "{{nope}}"}}, http=http)
    with pytest.raises(ValueError, match="needs the worker's shared"):
        build_processor("http", {"url": "https://a.example/"})
