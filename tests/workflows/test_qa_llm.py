"""LLM scenario generation: retried with AI_FAILED events, then a fallback to the schema generator."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.kafka import EventPublisher
from crucible.core.qa.models import QaFilters, QaPackageRunInput
from crucible.core.qa.spec import parse_document
from crucible.core.secrets import SecretStore, secret_box
from crucible.core.store import RunStore
from crucible.core.targets import TargetClient
from crucible.worker import WorkerDeps, build_worker
from examples.demo_target.app import create_app as demo_app
from tests.support.llm import ANSWER, GARBAGE, HANG, FakeChatCompletions
from tests.support.qa import DEMO_SPEC, assert_contiguous, events_of, serving, start_qa_run

ONE_OPERATION = QaFilters(include_methods=["GET"], include_paths=[r"^/products/\{product_id\}$"])
LLM_KEY = "llm-key-for-the-endpoint"
TARGET_TOKEN = "target-token-the-llm-must-not-see"


RunWithLlm = Callable[..., Awaitable[tuple[str, FakeChatCompletions]]]


@pytest.fixture
def run_with_llm(
    client: Client,
    store: RunStore,
    publisher: EventPublisher,
    settings: Settings,
    http: TargetClient,
    task_queue: str,
) -> RunWithLlm:
    """Runs a QA package against the demo with an LLM that plays ``script``; the run id and the LLM."""

    async def run(
        script: list[str], options: dict[str, Any] | None = None
    ) -> tuple[str, FakeChatCompletions]:
        fake = FakeChatCompletions(script)
        async with serving(fake.app()) as llm, serving(demo_app()) as target:
            llm_settings = settings.model_copy(
                update={
                    "llm_base_url": f"{llm.url}/v1",
                    "llm_timeout_s": 0.5,
                    "llm_api_key": SecretStr(LLM_KEY),
                }
            )
            worker = build_worker(
                client, WorkerDeps(store, publisher, settings=llm_settings, http=http), task_queue=task_queue
            )
            async with worker:
                handle = await start_qa_run(
                    client,
                    store,
                    task_queue=task_queue,
                    spec=parse_document(DEMO_SPEC.read_text()),
                    request=QaPackageRunInput(
                        base_url=target.url, generator="llm", **{"filters": ONE_OPERATION, **(options or {})}
                    ),
                )
                await handle.result()
        return handle.id, fake

    return run


async def test_an_llm_that_times_out_twice_then_answers(
    store: RunStore, settings: Settings, run_with_llm: RunWithLlm
) -> None:
    secret = await SecretStore(store.engine, secret_box(settings)).put(
        {"Authorization": f"Bearer {TARGET_TOKEN}"}
    )
    options = {"headers_secret": secret, "header_names": ["Authorization"]}
    run_id, fake = await run_with_llm([HANG, HANG, ANSWER], options)
    events = await events_of(store, run_id)
    assert_contiguous(events)
    assert [e.type for e in events] == [
        "REQUESTED",
        "SPEC_FETCHED",
        "AI_FAILED",
        "AI_FAILED",
        "SCENARIO_CREATED",
        "EXECUTION_FAILED",  # the demo's defect, found by the LLM's scenario
        "AI_SUCCESS",
        "QA_EVAL_DONE",
        "COMPLETE",
    ]
    assert [e.data["attempt"] for e in events if e.type == "AI_FAILED"] == [1, 2]
    assert "did not answer within 0.5 s" in events[2].data["reason"]
    assert events[4].data == {"operation": "GET /products/{product_id}", "scenarios": 2, "generator": "llm"}
    assert events[6].data["tokens"] == 200
    assert fake.authorizations == [f"Bearer {LLM_KEY}"] * 3
    assert fake.requests[0]["response_format"] == {"type": "json_object"}
    assert TARGET_TOKEN not in json.dumps(fake.requests), "the LLM never sees the target's headers"


async def test_the_token_budget_of_a_run_caps_what_the_llm_is_asked(
    store: RunStore, run_with_llm: RunWithLlm
) -> None:
    # Each answer costs 200 tokens: the first two operations spend the budget, the rest fall back.
    options = {"filters": QaFilters(include_methods=["GET"]), "concurrency": 1, "ai_token_budget": 300}
    run_id, fake = await run_with_llm([ANSWER], options)
    events = await events_of(store, run_id)
    made_by = {e.data["operation"]: e.data["generator"] for e in events if e.type == "SCENARIO_CREATED"}
    assert sorted(made_by.values()) == ["llm", "llm", "schema", "schema"]
    fallbacks = [e.data["reason"] for e in events if e.type == "AI_FALLBACK"]
    assert fallbacks == ["the run's LLM token budget is spent"] * 2
    assert len(fake.requests) == 2


async def test_an_llm_that_never_answers_falls_back_to_the_schema_generator(
    store: RunStore, run_with_llm: RunWithLlm
) -> None:
    run_id, fake = await run_with_llm([HANG, GARBAGE, HANG])
    events = await events_of(store, run_id)
    types = [e.type for e in events]
    assert types[2:6] == ["AI_FAILED", "AI_FAILED", "AI_FAILED", "AI_FALLBACK"]
    assert "not JSON" in events[3].data["reason"]
    assert events[6].type == "SCENARIO_CREATED" and events[6].data["generator"] == "schema"
    assert events[6].data["scenarios"] > 2
    assert types[-3:] == ["AI_SUCCESS", "QA_EVAL_DONE", "COMPLETE"]
    assert events[-3].data["fallbacks"] == 1
    assert len(fake.requests) == 3
