"""The run routes against the real API, Temporal, PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from crucible.core.store import RunStore, fetch_all_events
from tests.conftest import EVENTS_TOPIC
from tests.support.probe import ProbeInput
from tests.support.runs import kafka_events, start_probe, wait_for_event
from tests.support.servers import KafkaBroker


async def sse(api: httpx.AsyncClient, run_id: str, **headers: str) -> list[dict[str, Any]]:
    """Read the run's stream to its end; each message as {id, event, data}."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with api.stream("GET", f"/api/v1/runs/{run_id}/events/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                if current:
                    messages.append(current)
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = json.loads(value) if name == "data" else value
    return messages


async def poll(api: httpx.AsyncClient, run_id: str, *, limit: int = 2) -> list[dict[str, Any]]:
    """Poll as a frontend would (seed 000): small pages until the log is done."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while True:
            after = events[-1]["seq"] if events else 0
            page = (
                await api.get(f"/api/v1/runs/{run_id}/events", params={"after": after, "limit": limit})
            ).json()
            events += page["items"]
            if page["done"]:
                return events
            if not page["items"]:
                await asyncio.sleep(0.05)


async def test_a_run_shows_the_same_events_by_polling_over_sse_and_on_kafka(
    api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str, kafka: KafkaBroker
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=4))
    await handle.result()

    polled = await poll(api, handle.id)
    streamed = await sse(api, handle.id)
    on_kafka = await kafka_events(kafka.bootstrap, EVENTS_TOPIC, handle.id)

    expected = ["REQUESTED", "STEP", "STEP", "STEP", "STEP", "COMPLETE"]
    assert [e["type"] for e in polled] == expected
    assert [e["seq"] for e in polled] == [1, 2, 3, 4, 5, 6]
    assert set(polled[0]) == {"run_id", "seq", "type", "at", "data"}
    assert [m["data"] for m in streamed] == polled
    assert [(m["id"], m["event"]) for m in streamed] == [(str(e["seq"]), e["type"]) for e in polled]
    assert on_kafka == polled  # no retries here, so no repeats either


async def test_the_stream_is_live_and_ends_after_the_terminal_event(
    api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str, store: RunStore
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    reader = asyncio.create_task(sse(api, handle.id))
    await wait_for_event(store, handle.id, "STATE_CHANGED")
    await asyncio.sleep(0.3)
    assert not reader.done()  # waiting for more, not finished

    response = await api.post(f"/api/v1/runs/{handle.id}/signals/proceed", json={"note": "go"})
    assert response.status_code == 202, response.text

    async with asyncio.timeout(20):
        streamed = await reader
    assert [m["event"] for m in streamed] == ["REQUESTED", "STEP", "STATE_CHANGED", "PROCEEDED", "COMPLETE"]
    assert streamed[3]["data"]["data"] == {"note": "go"}


async def test_the_stream_resumes_after_last_event_id(
    api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=3))
    await handle.result()

    resumed = await sse(api, handle.id, **{"Last-Event-ID": "2"})
    assert [m["id"] for m in resumed] == ["3", "4", "5"]
    assert await sse(api, handle.id, **{"Last-Event-ID": "5"}) == []  # already saw the end

    bad = await api.get(f"/api/v1/runs/{handle.id}/events/stream", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


async def test_reading_a_run(api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=2))
    await handle.result()

    run = (await api.get(f"/api/v1/runs/{handle.id}")).json()
    assert run["run_id"] == handle.id
    assert (run["kind"], run["status"], run["verdict"]) == ("probe", "COMPLETED", "PASSED")
    assert run["summary"] == {"steps": 2}
    assert run["last_seq"] == 4
    assert run["created_at"] <= run["updated_at"] and run["closed_at"] is not None
    assert run["temporal_ui_url"] == f"http://127.0.0.1:8233/namespaces/default/workflows/{handle.id}"
    assert run["links"]["stream"] == f"/api/v1/runs/{handle.id}/events/stream"


async def test_listing_runs_filters_and_pages(
    api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str, store: RunStore
) -> None:
    done = [await start_probe(client, task_queue, ProbeInput(steps=1)) for _ in range(3)]
    for handle in done:
        await handle.result()
    waiting = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    try:
        await wait_for_event(store, waiting.id, "STATE_CHANGED")
        running = (await api.get("/api/v1/runs", params={"kind": "probe", "status": "RUNNING"})).json()
        assert waiting.id in {r["run_id"] for r in running["items"]}
        assert all(r["status"] == "RUNNING" for r in running["items"])
    finally:
        await waiting.terminate()

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"kind": "probe", "status": "COMPLETED", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/runs", params=params)).json()
        seen += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {h.id for h in done} <= set(seen)
    assert len(seen) == len(set(seen))


async def test_bad_list_queries_get_422_naming_the_field(api: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, str | int], list[str]]] = [
        ({"kind": "no such kind"}, ["query", "kind"]),
        ({"status": "DONE"}, ["query", "status"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"cursor": "garbage"}, ["query", "cursor"]),
    ]
    for params, loc in cases:
        response = await api.get("/api/v1/runs", params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"] == loc
    # A kind no run has is a filter that matches nothing.
    assert (await api.get("/api/v1/runs", params={"kind": "nope"})).json()["items"] == []


async def test_an_unknown_run_is_404_everywhere(api: httpx.AsyncClient) -> None:
    missing = "probe-" + "0" * 32
    for method, path in [
        ("GET", f"/api/v1/runs/{missing}"),
        ("GET", f"/api/v1/runs/{missing}/events"),
        ("GET", f"/api/v1/runs/{missing}/events/stream"),
        ("POST", f"/api/v1/runs/{missing}/cancel"),
        ("POST", f"/api/v1/runs/{missing}/signals/proceed"),
    ]:
        response = await api.request(method, path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": f"run '{missing}' not found"}


async def test_cancelling_a_running_run_then_a_finished_one(
    api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str, store: RunStore
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    await wait_for_event(store, handle.id, "STATE_CHANGED")

    response = await api.post(f"/api/v1/runs/{handle.id}/cancel")
    assert response.status_code == 202
    await wait_for_event(store, handle.id, "CANCELLED")

    events = await fetch_all_events(store, handle.id)
    assert events[-1].type == "CANCELLED"
    run = (await api.get(f"/api/v1/runs/{handle.id}")).json()
    assert run["status"] == "CANCELLED"

    again = await api.post(f"/api/v1/runs/{handle.id}/cancel")
    assert again.status_code == 409
    assert "already finished" in again.json()["detail"]


async def test_signals_are_checked_against_the_kind(
    api: httpx.AsyncClient, client: Client, worker: Worker, task_queue: str, store: RunStore
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    await wait_for_event(store, handle.id, "STATE_CHANGED")
    base = f"/api/v1/runs/{handle.id}/signals"

    # A signal is a part of the run, named in the path: one its kind lacks is not found.
    unknown = await api.post(f"{base}/approve", json={})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "signal 'approve' not found; probe runs accept: proceed"

    wrong = await api.post(f"{base}/proceed", json={"note": 3, "times": "many"})
    assert wrong.status_code == 422
    assert [e["loc"] for e in wrong.json()["detail"]] == [["body", "note"], ["body", "times"]]

    missing = await api.post(f"{base}/proceed", json={})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "note"]

    assert (await api.post(f"{base}/proceed", json={"note": "ok"})).status_code == 202
    await handle.result()
    late = await api.post(f"{base}/proceed", json={"note": "again"})
    assert late.status_code == 409


async def test_a_terminated_run_still_ends_its_log(
    api: httpx.AsyncClient,
    client: Client,
    worker: Worker,
    task_queue: str,
    store: RunStore,
    kafka: KafkaBroker,
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    await wait_for_event(store, handle.id, "STATE_CHANGED")
    await handle.terminate(reason="operator stopped it")

    run = (await api.get(f"/api/v1/runs/{handle.id}")).json()
    assert run["status"] == "TERMINATED"
    streamed = await sse(api, handle.id)
    assert streamed[-1]["event"] == "FAILED"
    assert streamed[-1]["data"]["data"]["reason"] == "terminated"
    assert [int(m["id"]) for m in streamed] == list(range(1, len(streamed) + 1))
    on_kafka = await kafka_events(kafka.bootstrap, EVENTS_TOPIC, handle.id)
    assert on_kafka[-1] == streamed[-1]["data"]  # Kafka hears the end too


async def test_a_run_terminated_before_it_wrote_anything_still_ends(
    api: httpx.AsyncClient, client: Client, task_queue: str
) -> None:
    handle = await start_probe(client, f"{task_queue}-no-worker", ProbeInput(steps=1))
    assert (await api.get(f"/api/v1/runs/{handle.id}")).json()["status"] == "RUNNING"
    await handle.terminate(reason="never picked up")

    run = (await api.get(f"/api/v1/runs/{handle.id}")).json()
    assert (run["status"], run["last_seq"], run["kind"]) == ("TERMINATED", 1, "probe")
    async with asyncio.timeout(20):
        streamed = await sse(api, handle.id)
    assert [(m["id"], m["event"]) for m in streamed] == [("1", "FAILED")]
    page = (await api.get(f"/api/v1/runs/{handle.id}/events")).json()
    assert page["done"] is True


async def test_health_and_metrics(api: httpx.AsyncClient) -> None:
    health = await api.get("/healthz")
    assert health.status_code == 200
    assert {name: c["ok"] for name, c in health.json()["components"].items()} == {
        "temporal": True,
        "postgres": True,
        "kafka": True,
    }
    await api.get("/api/v1/runs/probe-" + "0" * 32)
    metrics = (await api.get("/metrics")).text
    assert 'crucible_api_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    # By route template, never by run id: the label's values stay few.
    assert 'route="/api/v1/runs/{run_id}",status="404"' in metrics
    assert "probe-000" not in metrics


async def test_the_openapi_docs_are_served(api: httpx.AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    schema = (await api.get("/openapi.json")).json()
    assert "/api/v1/runs/{run_id}/signals/{name}" in schema["paths"]
