"""The demo target's /metrics: requests by route template and status, and their durations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from examples.demo_target.app import create_app


@pytest.fixture
async def demo() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app()), base_url="http://demo"
    ) as c:
        yield c


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_requests_are_counted_by_route_template(demo: httpx.AsyncClient) -> None:
    for path in ("/products/1", "/products/2", "/products/999", "/nowhere"):
        await demo.get(path)
    response = await demo.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    seen = samples(response.text)

    def requests(route: str, status: str) -> float:
        labels = frozenset({("method", "GET"), ("route", route), ("status", status)})
        return seen.get(("demo_target_requests_total", labels), 0)

    assert requests("/products/{product_id}", "200") == 2
    assert requests("/products/{product_id}", "404") == 1
    assert requests("unmatched", "404") == 1
    count = (
        "demo_target_request_duration_seconds_count",
        frozenset({("method", "GET"), ("route", "/products/{product_id}")}),
    )
    assert seen[count] == 3


async def test_each_app_counts_for_itself(demo: httpx.AsyncClient) -> None:
    await demo.get("/health")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app()), base_url="http://x"
    ) as other:
        text = (await other.get("/metrics")).text
    assert 'route="/health"' not in text
