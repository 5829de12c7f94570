"""Cancelling a QA run: CANCELLED within 5 s, in-flight requests dropped, partial results kept."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from crucible.core.store import RunStore
from tests.support.qa import events_of, wait_closed
from tests.support.runs import wait_for_event
from tests.support.targets import HoldingTarget, simple_spec

pytestmark = pytest.mark.usefixtures("crucible_worker")

FAST = [f"/fast/{i}" for i in range(4)]
SLOW = [f"/slow/{i}" for i in range(6)]


async def test_a_cancelled_run_ends_quickly_drops_its_requests_and_keeps_what_it_found(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    async with HoldingTarget() as target:
        started = await api.post(
            "/api/v1/qa-runs",
            json={"spec": simple_spec(FAST + SLOW), "base_url": target.url, "request_timeout_s": 120},
        )
        run_id = started.json()["run_id"]
        async with asyncio.timeout(30):
            while target.open < 2:
                await asyncio.sleep(0.05)
        await wait_for_event(store, run_id, "EXECUTION_SUCCESS")

        cancelled_at = time.monotonic()
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        run = await wait_closed(api, run_id, timeout=5)
        assert run["status"] == "CANCELLED"
        assert time.monotonic() - cancelled_at < 5

        async with asyncio.timeout(8):  # the batch hears of it at its next heartbeat
            while target.open:
                await asyncio.sleep(0.05)

    events = await events_of(store, run_id)
    assert events[-1].type == "CANCELLED"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    report = (await api.get(f"/api/v1/runs/{run_id}/report")).json()
    assert report["partial"] is True
    by_status: dict[str, list[str]] = {}
    for endpoint in report["endpoints"]:
        by_status.setdefault(endpoint["status"], []).append(endpoint["operation"])
    assert set(by_status["PASSED"]) >= {f"GET {p}" for p in FAST[:2]}
    assert set(by_status["NOT_RUN"]) >= {f"GET {p}" for p in SLOW}
