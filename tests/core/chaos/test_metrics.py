"""The steady probes' metrics: series made up front, dropped after use, served on a port."""

from __future__ import annotations

import socket

import httpx
import pytest

from crucible.core.chaos.metrics import (
    PROBE_REGISTRY,
    claim_series,
    record_probe,
    release_series,
    serve_probe_metrics,
    stop_probe_metrics,
)

pytestmark = pytest.mark.timeout(15)


def value(name: str, **labels: str) -> float | None:
    return PROBE_REGISTRY.get_sample_value(name, labels)


async def test_series_exist_at_zero_and_go_when_no_longer_used() -> None:
    claim_series("exp-a", ["p"])
    assert value("crucible_probe_requests_total", experiment="exp-a", probe="p", outcome="error") == 0
    assert value("crucible_probe_request_duration_seconds_count", experiment="exp-a", probe="p") == 0
    record_probe("exp-a", "p", ok=True, duration_s=0.12)
    record_probe("exp-a", "p", ok=False, duration_s=None)  # not sent: counted, not timed
    assert value("crucible_probe_requests_total", experiment="exp-a", probe="p", outcome="ok") == 1
    assert value("crucible_probe_requests_total", experiment="exp-a", probe="p", outcome="error") == 1
    assert value("crucible_probe_request_duration_seconds_count", experiment="exp-a", probe="p") == 1
    assert (
        value("crucible_probe_request_duration_seconds_bucket", experiment="exp-a", probe="p", le="0.15") == 1
    )
    assert (
        value("crucible_probe_request_duration_seconds_bucket", experiment="exp-a", probe="p", le="0.1") == 0
    )

    claim_series("exp-a", ["p"])  # a retry of the same probes on this worker, say
    release_series("exp-a", ["p"], after_s=0)
    assert value("crucible_probe_requests_total", experiment="exp-a", probe="p", outcome="ok") == 1
    release_series("exp-a", ["p"], after_s=0)
    assert value("crucible_probe_requests_total", experiment="exp-a", probe="p", outcome="ok") is None
    assert value("crucible_probe_request_duration_seconds_count", experiment="exp-a", probe="p") is None


async def test_served_on_the_port_asked_for_or_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = serve_probe_metrics(busy)
        try:
            assert port != busy
            claim_series("exp-b", ["p"])
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            assert 'crucible_probe_requests_total{experiment="exp-b",outcome="ok",probe="p"} 0.0' in text
            assert "# TYPE crucible_probe_request_duration_seconds histogram" in text
            assert "python_gc" not in text  # a registry of its own
        finally:
            release_series("exp-b", ["p"], after_s=0)
            stop_probe_metrics(port)
