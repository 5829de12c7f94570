"""QA package runs through the API, against the demo target and real Temporal, PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import junitparser
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from crucible.core.qa.store import QaStore
from crucible.core.store import RunStore
from examples.demo_target.app import create_app as demo_app
from tests.support.qa import (
    DEMO_SPEC,
    HeaderRecorder,
    InFlight,
    assert_contiguous,
    events_of,
    serving,
    wait_closed,
)

pytestmark = pytest.mark.usefixtures("crucible_worker")

SECRET = "s3cret-token-value"
DEFECT = "GET /products/{product_id}"


@pytest.fixture
async def demo() -> Any:
    recorder = HeaderRecorder(demo_app())
    async with serving(recorder) as server:
        server.recorder = recorder  # type: ignore[attr-defined]
        yield server


async def test_a_qa_run_against_the_demo_target_finds_its_defect(
    api: httpx.AsyncClient, store: RunStore, client: Client, crucible_worker: Worker, demo: Any
) -> None:
    started = await api.post(
        "/api/v1/qa-runs",
        json={
            "spec": DEMO_SPEC.read_text(),
            "base_url": demo.url,
            "headers": {"X-Api-Key": SECRET},
            "seed": 7,
        },
    )
    assert started.status_code == 202, started.text
    body = started.json()
    run_id = body["run_id"]
    assert run_id.startswith("qa-")
    assert body["links"]["report"] == f"/api/v1/runs/{run_id}/report"
    assert body["links"]["temporal_ui"].endswith(f"/workflows/{run_id}")

    run = await wait_closed(api, run_id)
    assert (run["status"], run["verdict"]) == ("COMPLETED", "FAILED")

    events = await events_of(store, run_id)
    assert_contiguous(events)
    types = [e.type for e in events]
    assert types[:2] == ["REQUESTED", "SPEC_FETCHED"]
    assert types[-3:] == ["AI_SUCCESS", "QA_EVAL_DONE", "COMPLETE"]
    per_operation = types[2:-3]
    operations = [e.data["operation"] for e in events[2:-3:2]]
    assert per_operation[::2] == ["SCENARIO_CREATED"] * 8
    assert set(per_operation[1::2]) <= {"EXECUTION_SUCCESS", "EXECUTION_FAILED"}
    assert [e.data["operation"] for e in events[3:-3:2]] == operations  # each pair is one operation
    assert len(set(operations)) == 8, "every operation is attempted once"
    failed = [e.data["operation"] for e in events if e.type == "EXECUTION_FAILED"]
    assert failed == [DEFECT]

    report = (await api.get(f"/api/v1/runs/{run_id}/report")).json()
    assert report["verdict"] == "FAILED" and report["operations"] == 8 and report["passed"] == 7
    (endpoint,) = [e for e in report["endpoints"] if e["operation"] == DEFECT]
    schema_failures = [f for f in endpoint["failures"] if f["check"] == "response_schema_conformance"]
    assert {f["path"] for f in schema_failures} == {"$.price"}
    assert endpoint["failed_checks"] == ["response_schema_conformance"]
    assert "200" in endpoint["coverage"]["declared"] and 200 in endpoint["coverage"]["seen"]

    junit = (await api.get(f"/api/v1/runs/{run_id}/report", params={"format": "junit"})).text
    xml = junitparser.JUnitXml.fromstring(junit)
    cases = {case.name: case for suite in xml for case in suite}
    assert len(cases) == 8
    assert not cases[DEFECT].is_passed and "$.price" in cases[DEFECT].result[0].text
    assert cases["GET /health"].is_passed

    page = await api.get(f"/api/v1/runs/{run_id}/report", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "$.price" in page.text and "<script src" not in page.text and "<link" not in page.text

    # The target got the header; nothing a user or operator can read holds its value.
    assert any(h.get("x-api-key") == SECRET for h in demo.recorder.seen)
    history = await client.get_workflow_handle(run_id).fetch_history()
    readable = [
        json.dumps(history.to_json_dict()),
        json.dumps([e.envelope() for e in events]),
        json.dumps(report),
        junit,
        page.text,
        json.dumps(run),
    ]
    assert not any(SECRET in text for text in readable)
    assert "X-Api-Key" in json.dumps(events[0].data)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_run_has_at_most_its_concurrency_of_requests_in_flight(
    api: httpx.AsyncClient, store: RunStore, concurrency: int
) -> None:
    target = InFlight(demo_app())
    async with serving(target) as server:
        started = await api.post(
            "/api/v1/qa-runs",
            json={"spec": DEMO_SPEC.read_text(), "base_url": server.url, "concurrency": concurrency},
        )
        assert started.status_code == 202, started.text
        run = await wait_closed(api, started.json()["run_id"])
    assert run["status"] == "COMPLETED"
    assert target.requests == len(await QaStore(store.engine).results(run["run_id"]))
    assert target.most <= concurrency  # never more than allowed
    assert (target.most > 1) is (concurrency > 1)  # and in parallel when allowed


async def test_bad_input_gets_every_error_field_by_field_and_starts_nothing(
    api: httpx.AsyncClient, store: RunStore
) -> None:
    before = await api.get("/api/v1/runs", params={"kind": "qa", "limit": 500})
    response = await api.post(
        "/api/v1/qa-runs",
        json={"spec": "just: some yaml\nnot: a spec\n", "base_url": "not a url", "concurrency": -1},
    )
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert set(errors) == {("body", "spec"), ("body", "base_url"), ("body", "concurrency")}
    assert "openapi" in errors[("body", "spec")]

    more = await api.post(
        "/api/v1/qa-runs",
        json={
            "spec": DEMO_SPEC.read_text(),
            "base_url": "http://127.0.0.1:1",
            "include": {"paths": ["("], "methods": ["FETCH"]},
            "known_failures": ["GET /x"],
            "min_pass_rate": 2,
            "headers": {"Authorization": "Bearer line\nbreak-secret"},
        },
    )
    assert more.status_code == 422
    locs = {tuple(e["loc"]) for e in more.json()["detail"]}
    assert locs == {
        ("body", "include", "paths", 0),
        ("body", "include", "methods", 0),
        ("body", "known_failures", 0),
        ("body", "min_pass_rate"),
        ("body", "headers"),
    }
    assert "break-secret" not in more.text, "a header's value is never echoed, even when wrong"
    query = await api.post(
        "/api/v1/qa-runs", json={"spec": DEMO_SPEC.read_text(), "base_url": "http://h/?a=1"}
    )
    assert query.status_code == 422 and query.json()["detail"][0]["loc"] == ["body", "base_url"]
    no_llm = await api.post(
        "/api/v1/qa-runs",
        json={"spec": DEMO_SPEC.read_text(), "base_url": "http://127.0.0.1:1", "generator": "llm"},
    )
    assert no_llm.status_code == 409 and "CRUCIBLE_LLM_BASE_URL" in no_llm.json()["detail"]
    after = await api.get("/api/v1/runs", params={"kind": "qa", "limit": 500})
    assert len(after.json()["items"]) == len(before.json()["items"])


async def test_the_api_answers_others_while_it_reads_a_large_inline_spec(api: httpx.AsyncClient) -> None:
    """Reading a spec of thousands of operations whole takes seconds. It happens off the event
    loop, so the health check (and everyone else's requests) are answered meanwhile. The request
    ends in a 409 here (no LLM endpoint), which comes after the spec is read: no run starts."""
    schema = {"$ref": "#/components/schemas/Item"}
    operation = {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}},
    }
    item = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "nullable": True} for i in range(40)},
    }
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "large", "version": "1"},
        "paths": {f"/items{i}/{{id}}": {"get": operation} for i in range(6000)},
        "components": {"schemas": {"Item": item}},
    }
    body = {"spec": spec, "base_url": "http://127.0.0.1:1", "generator": "llm"}
    loop = asyncio.get_running_loop()
    started = loop.time()
    posted = asyncio.ensure_future(api.post("/api/v1/qa-runs", json=body))
    answered = [started]
    while not posted.done():  # health checks one after another, as a load balancer's
        assert (await api.get("/healthz")).status_code == 200
        answered.append(loop.time())
    assert (await posted).status_code == 409
    took = loop.time() - started
    longest_wait = max(later - earlier for earlier, later in itertools.pairwise(answered))
    assert longest_wait < took / 2, f"a health check waited {longest_wait:.2f} s of the {took:.2f} s"


async def test_a_spec_url_that_fails_ends_the_run_failed_with_spec_invalid(
    api: httpx.AsyncClient, store: RunStore, demo: Any
) -> None:
    started = await api.post(
        "/api/v1/qa-runs", json={"spec_url": f"{demo.url}/no-such-spec.json", "base_url": demo.url}
    )
    run_id = started.json()["run_id"]
    run = await wait_closed(api, run_id)
    assert run["status"] == "FAILED"
    events = await events_of(store, run_id)
    assert [e.type for e in events] == ["REQUESTED", "SPEC_INVALID", "FAILED"]
    assert "404" in events[1].data["reason"]


async def test_a_fetched_document_that_is_not_a_spec_ends_the_run_failed(
    api: httpx.AsyncClient, store: RunStore, demo: Any
) -> None:
    started = await api.post("/api/v1/qa-runs", json={"spec_url": f"{demo.url}/health", "base_url": demo.url})
    run_id = started.json()["run_id"]
    assert (await wait_closed(api, run_id))["status"] == "FAILED"
    events = await events_of(store, run_id)
    assert [e.type for e in events] == ["REQUESTED", "SPEC_INVALID", "FAILED"]
    assert "openapi" in events[1].data["reason"]


async def test_a_replay_sends_the_same_scenarios_and_a_baseline_gates_only_new_failures(
    api: httpx.AsyncClient, store: RunStore, demo: Any
) -> None:
    first = (
        await api.post(
            "/api/v1/qa-runs", json={"spec_url": f"{demo.url}/openapi.json", "base_url": demo.url, "seed": 3}
        )
    ).json()["run_id"]
    assert (await wait_closed(api, first))["verdict"] == "FAILED"

    replay = await api.post(
        "/api/v1/qa-runs",
        json={
            "replay_of": first,
            "base_url": demo.url,
            "known_failures": [f"{DEFECT} response_schema_conformance"],
        },
    )
    assert replay.status_code == 202, replay.text
    second = replay.json()["run_id"]
    run = await wait_closed(api, second)
    assert (run["status"], run["verdict"]) == ("COMPLETED", "PASSED")

    qa = QaStore(store.engine)
    sent = [(r.operation, r.idx, r.scenario) for r in await qa.results(first)]
    assert sent and [(r.operation, r.idx, r.scenario) for r in await qa.results(second)] == sent
    events = await events_of(store, second)
    assert events[1].data["replayed_scenarios"] == len(sent)
    assert {e.data["generator"] for e in events if e.type == "SCENARIO_CREATED"} == {"replay"}
    report = (await api.get(f"/api/v1/runs/{second}/report")).json()
    assert report["known_failures_seen"] == [f"{DEFECT} response_schema_conformance"]
    assert report["new_failures"] == []

    unknown = await api.post("/api/v1/qa-runs", json={"replay_of": "qa-nope", "base_url": demo.url})
    assert unknown.status_code == 404 and "qa-nope" in unknown.json()["detail"]


async def test_a_target_the_policy_refuses_is_403_before_any_run(api: httpx.AsyncClient) -> None:
    body = {"spec": DEMO_SPEC.read_text(), "base_url": "http://169.254.169.254/latest"}
    refused = await api.post("/api/v1/qa-runs", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"].startswith("base_url: target refused by policy")
    spec = await api.post(
        "/api/v1/qa-runs", json={**body, "spec": None, "spec_url": "http://169.254.169.254:0/spec"}
    )
    assert spec.status_code == 403 and "base_url: " in spec.json()["detail"]
    assert "spec_url: " in spec.json()["detail"]
