"""QA runs against real third-party specs of each version: no crash, a result for every operation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crucible.core.store import RunStore
from tests.support.qa import SPECS, events_of, httpbin, wait_closed

pytestmark = pytest.mark.usefixtures("crucible_worker")


@pytest.fixture(scope="module")
async def httpbin_url() -> AsyncIterator[str]:
    async with httpbin() as url:
        yield url


async def _run(api: httpx.AsyncClient, store: RunStore, body: dict[str, Any]) -> dict[str, Any]:
    started = await api.post("/api/v1/qa-runs", json={"concurrency": 16, "request_timeout_s": 3, **body})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    run = await wait_closed(api, run_id, timeout=240)
    assert run["status"] == "COMPLETED", await events_of(store, run_id)
    report = (await api.get(f"/api/v1/runs/{run_id}/report")).json()
    assert report["endpoints"], "the run found operations"
    assert [e["operation"] for e in report["endpoints"] if e["status"] == "NOT_RUN"] == []
    return dict(report)


@pytest.mark.timeout(300)
async def test_httpbin_swagger_20_with_binary_and_streaming_endpoints(
    api: httpx.AsyncClient, store: RunStore, httpbin_url: str
) -> None:
    report = await _run(api, store, {"spec_url": f"{httpbin_url}/spec.json", "base_url": httpbin_url})
    assert report["spec_version"] == "2.0" and report["operations"] == 78  # Schemathesis 4 reaches 61 of them
    by_key = {e["operation"]: e for e in report["endpoints"]}
    for binary_or_streaming in (
        "GET /image/png",
        "GET /bytes/{n}",
        "GET /stream/{n}",
        "GET /drip",
        "GET /gzip",
    ):
        assert by_key[binary_or_streaming]["scenarios"] >= 1, binary_or_streaming
    assert by_key["GET /get"]["status"] == "PASSED"


@pytest.mark.parametrize(
    "name",
    [
        "openapi-3.0-petstore.yaml",
        "openapi-3.1-scalar-galaxy.yaml",
        "openapi-3.1-open-payments-resource-server.yaml",
    ],
)
async def test_openapi_30_and_31_specs_run_to_a_result_for_every_operation(
    api: httpx.AsyncClient, store: RunStore, httpbin_url: str, name: str
) -> None:
    # httpbin does not implement these APIs: the point is that every operation is attempted
    # and judged, with the undeclared statuses it answers reported as such.
    report = await _run(api, store, {"spec": (SPECS / name).read_text(), "base_url": httpbin_url})
    assert report["spec_version"] in ("3.0", "3.1")
    assert all(e["scenarios"] >= 1 for e in report["endpoints"])
    assert report["verdict"] == "FAILED"
