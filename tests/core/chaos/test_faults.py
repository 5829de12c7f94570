"""Fault dataclasses: validation, and their JSON form for activities and the API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crucible.core.chaos import (
    Bandwidth,
    Blackhole,
    Fault,
    HttpErrors,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    fault_from_dict,
    fault_to_dict,
)
from crucible.core.errors import InvalidRequestError

pytestmark = pytest.mark.timeout(10)

FAULTS: list[Fault] = [
    Latency(ms=200, jitter_ms=20, direction="upstream", toxicity=0.5),
    Bandwidth(kbps=64),
    Blackhole(timeout_ms=1000),
    ResetPeer(),
    LimitData(bytes=1024, direction="upstream"),
    HttpErrors(status=502, body="bad gateway", toxicity=0.1),
    SlowClose(delay_ms=100, direction="upstream"),
    Slicer(average_size=64, size_variation=8, delay_us=100),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: type(f).__name__)
def test_a_fault_survives_its_json_form(fault: Fault) -> None:
    assert fault_from_dict(json.loads(json.dumps(fault_to_dict(fault)))) == fault


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "latency", "ms": -1}, "ms"),
        ({"type": "latency", "ms": 10, "direction": "sideways"}, "direction"),
        ({"type": "latency", "ms": 10, "toxicity": 1.5}, "toxicity"),
        ({"type": "latency", "ms": True}, "ms"),
        ({"type": "bandwidth", "kbps": 0}, "kbps"),
        ({"type": "limit_data", "bytes": 1.5}, "bytes"),
        ({"type": "http_errors", "status": 200}, "status"),
        ({"type": "reset_peer", "timeout_ms": "soon"}, "timeout_ms"),
        ({"type": "latency", "ms": 10, "colour": "red"}, "colour"),
        ({"type": "slicer", "average_size": 10, "size_variation": 10}, "size_variation"),
        ({"type": "slow_close", "delay_ms": -5}, "delay_ms"),
        ({"type": "latency"}, "type"),
        ({"type": "earthquake"}, "type"),
        ({}, "type"),
    ],
)
def test_a_wrong_field_is_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        fault_from_dict(data)
    assert raised.value.errors[0].loc == (field,)


def test_http_errors_knows_its_reason_phrase() -> None:
    assert HttpErrors().reason == "Service Unavailable"
    assert HttpErrors(status=599).reason == "Error"
