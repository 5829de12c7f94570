"""A QA run whose worker is killed mid-run completes on a new one, with nothing duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.qa.models import QaPackageRunInput
from crucible.core.qa.store import QaStore
from crucible.core.store import RunStore, fetch_all_events
from tests.conftest import EVENTS_TOPIC
from tests.support.dev import Child
from tests.support.qa import serving, start_qa_run
from tests.support.runs import kafka_events
from tests.support.servers import KafkaBroker
from tests.support.targets import simple_spec
from tests.test_durability import start_worker, worker_env

pytestmark = pytest.mark.timeout(180)

OPERATIONS = 50
PATHS = [f"/items/{i}" for i in range(OPERATIONS)]


def slow_target(seen: Counter[str]) -> Starlette:
    async def item(request: Request) -> JSONResponse:
        seen[request.url.path] += 1
        await asyncio.sleep(0.25)
        return JSONResponse({"path": request.url.path})

    return Starlette(routes=[Route("/items/{i}", item)])


async def test_a_qa_run_survives_kill_9_of_its_worker(
    settings: Settings, client: Client, store: RunStore, kafka: KafkaBroker, task_queue: str, tmp_path: Path
) -> None:
    env = worker_env(settings, task_queue, tmp_path)
    assert settings.secrets_key is not None
    env["CRUCIBLE_SECRETS_KEY"] = settings.secrets_key.get_secret_value()
    seen: Counter[str] = Counter()
    first = await start_worker(env, "worker", module="crucible")
    second: Child | None = None
    try:
        async with serving(slow_target(seen)) as target:
            handle = await start_qa_run(
                client,
                store,
                task_queue=task_queue,
                spec=simple_spec(PATHS),
                request=QaPackageRunInput(base_url=target.url, concurrency=2),
            )
            async with asyncio.timeout(60):
                while (
                    sum(
                        1 for e in await fetch_all_events(store, handle.id) if e.type.startswith("EXECUTION_")
                    )
                    < 8
                ):
                    await asyncio.sleep(0.05)
            await first.kill()  # SIGKILL mid-run: batches in flight and the workflow's cache die with it
            done_at_kill = sum(seen.values())
            assert done_at_kill < OPERATIONS, "the run was still in the middle when the worker died"

            second = await start_worker(env, "worker", module="crucible")
            result = await asyncio.wait_for(handle.result(), 120)
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    rows = await QaStore(store.engine).results(handle.id)
    row = await QaStore(store.engine).get(handle.id)
    assert row is not None and row.evaluation is not None
    failed = [e for e in row.evaluation["endpoints"] if e["status"] != "PASSED"]
    assert (result.operations, result.passed) == (OPERATIONS, OPERATIONS), failed
    assert set(seen) == set(PATHS), "every operation was attempted"
    events = await fetch_all_events(store, handle.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    per_operation = Counter((e.type, e.data["operation"]) for e in events if "operation" in e.data)
    assert set(per_operation.values()) == {1}, "one SCENARIO_CREATED and one EXECUTION_* per operation"
    assert len(per_operation) == 2 * OPERATIONS
    assert [e.type for e in events[-3:]] == ["AI_SUCCESS", "QA_EVAL_DONE", "COMPLETE"]

    assert sorted((r.operation, r.idx) for r in rows) == sorted((f"GET {p}", 0) for p in PATHS)
    assert all(r.passed for r in rows)
    on_kafka = await kafka_events(kafka.bootstrap, EVENTS_TOPIC, handle.id)
    assert sorted({e["seq"] for e in on_kafka}) == [e.seq for e in events]
