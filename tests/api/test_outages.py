"""PostgreSQL or the broker going away while the API is up: 503 naming it, then recovery.

This module has its own PostgreSQL, broker and API, so stopping them disturbs no other test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from crucible.api.app import create_app
from crucible.core.auth.bootstrap import bootstrap_dev
from crucible.core.config import load_settings
from crucible.core.db import create_engine
from crucible.core.kafka import EventPublisher
from crucible.core.secrets import new_key
from crucible.core.store import RunStore, fetch_all_events
from crucible.stack.process import ManagedProcess
from crucible.stack.services import free_port, temporal_spec, wait_temporal_ready
from crucible.worker import WorkerDeps, build_worker
from tests.conftest import EVENTS_TOPIC, make_settings
from tests.support.probe import ProbeInput, ProbeWorkflow, ProceedInput
from tests.support.runs import kafka_events, start_probe, wait_for_event
from tests.support.servers import ApiServer, KafkaBroker, PostgresServer


class Parts:
    def __init__(
        self, postgres: PostgresServer, kafka: KafkaBroker, api: ApiServer, headers: dict[str, str]
    ) -> None:
        self.postgres, self.kafka, self.api, self.headers = postgres, kafka, api, headers


@pytest.fixture(scope="module")
async def parts(tmp_path_factory: pytest.TempPathFactory, client: Client) -> AsyncIterator[Parts]:
    folder: Path = tmp_path_factory.mktemp("outages")
    postgres = await PostgresServer.launch(folder)
    kafka = await KafkaBroker.launch(folder, topic=EVENTS_TOPIC)
    settings = make_settings(home=folder, temporal=client, postgres=postgres, kafka=kafka)
    engine = create_engine(postgres.url)
    token = (await bootstrap_dev(engine, folder)).token
    await engine.dispose()
    api = ApiServer(create_app(settings))
    await api.start()
    yield Parts(postgres, kafka, api, {"Authorization": f"Bearer {token}"})
    await api.stop()
    await kafka.stop()
    await postgres.stop()


@pytest.fixture
async def http(parts: Parts) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=parts.api.url, headers=parts.headers, timeout=30) as client:
        yield client


async def healthy_again(http: httpx.AsyncClient) -> None:
    async with asyncio.timeout(30):
        while (await http.get("/healthz")).status_code != 200:
            await asyncio.sleep(0.2)


async def test_postgres_down_gives_503_and_recovers(parts: Parts, http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/runs")).status_code == 200  # the pool holds connections now
    await parts.postgres.stop()
    try:
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["detail"] == "unavailable: postgres"
        assert health.json()["components"]["postgres"]["ok"] is False
        assert health.json()["components"]["temporal"]["ok"] is True

        for path in [
            "/api/v1/runs",
            "/api/v1/runs/probe-" + "0" * 32,
            "/api/v1/runs/probe-" + "0" * 32 + "/events",
        ]:
            response = await http.get(path)
            assert response.status_code == 503, path
            assert response.json()["component"] == "postgres"
            assert response.headers["Retry-After"] == "5"
    finally:
        await parts.postgres.start()

    await healthy_again(http)
    assert (await http.get("/api/v1/runs")).status_code == 200


async def test_broker_down_gives_503_and_recovers(parts: Parts, http: httpx.AsyncClient) -> None:
    await parts.kafka.stop()
    try:
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["detail"] == "unavailable: kafka"
        assert (await http.get("/api/v1/runs")).status_code == 200  # reads do not need the broker
    finally:
        await parts.kafka.start()
    await healthy_again(http)


@pytest.fixture
async def outage_worker(parts: Parts, client: Client, task_queue: str) -> AsyncIterator[RunStore]:
    """A worker whose PostgreSQL and broker are this module's, the ones the tests stop."""
    engine = create_engine(parts.postgres.url)
    # A send the broker has not taken within a second fails and drops the producer. (With
    # a longer wait, a send queued before a restart of the embedded broker reaches it before
    # the topic exists again, and the broker, unlike Kafka, files it where no reader finds it.)
    publisher = EventPublisher(
        parts.kafka.bootstrap, topic=EVENTS_TOPIC, idempotence=False, publish_timeout_s=1
    )
    store = RunStore(engine)
    worker = build_worker(
        client, WorkerDeps(store, publisher), task_queue=task_queue, workflows=[ProbeWorkflow]
    )
    async with worker:
        yield store
    await publisher.stop()
    await engine.dispose()


async def proceed_while_down(
    part: PostgresServer | KafkaBroker, handle: WorkflowHandle[ProbeWorkflow, int]
) -> None:
    """Stop ``part``, let the run try to write, check it waits, then start ``part`` again."""
    await part.stop()
    try:
        await handle.signal(ProbeWorkflow.proceed, ProceedInput(note="while a part is down"))
        await asyncio.sleep(2)  # the run tries to write, and keeps trying
        assert (await handle.describe()).status.name == "RUNNING"  # type: ignore[union-attr]
    finally:
        await part.start()


async def test_a_run_waits_for_postgres_and_loses_nothing(
    parts: Parts, client: Client, task_queue: str, outage_worker: RunStore
) -> None:
    store = outage_worker
    handle = await start_probe(client, task_queue, ProbeInput(steps=2, wait_for_proceed=True))
    await wait_for_event(store, handle.id, "STATE_CHANGED")
    await proceed_while_down(parts.postgres, handle)
    assert await asyncio.wait_for(handle.result(), 60) == 2

    events = await fetch_all_events(store, handle.id)
    assert [e.type for e in events] == ["REQUESTED", "STEP", "STEP", "STATE_CHANGED", "PROCEEDED", "COMPLETE"]
    assert [e.seq for e in events] == list(range(1, 7))


async def test_a_run_waits_for_the_broker_and_publishes_after_it(
    parts: Parts, client: Client, task_queue: str, outage_worker: RunStore
) -> None:
    store = outage_worker
    handle = await start_probe(client, task_queue, ProbeInput(steps=1, wait_for_proceed=True))
    await wait_for_event(store, handle.id, "STATE_CHANGED")
    await proceed_while_down(parts.kafka, handle)  # the embedded broker comes back empty
    assert await asyncio.wait_for(handle.result(), 60) == 1

    assert [e.type for e in await fetch_all_events(store, handle.id)][-2:] == ["PROCEEDED", "COMPLETE"]
    after_restart = await kafka_events(parts.kafka.bootstrap, EVENTS_TOPIC, handle.id)
    assert [e["type"] for e in after_restart][-2:] == ["PROCEEDED", "COMPLETE"]


async def test_an_api_started_before_temporal_recovers_when_it_arrives(
    tmp_path_factory: pytest.TempPathFactory, parts: Parts
) -> None:
    folder = tmp_path_factory.mktemp("late-temporal")
    port = free_port()
    settings = load_settings(
        use_stack_env=False,
        home=folder,
        temporal_address=f"127.0.0.1:{port}",
        database_url=parts.postgres.url,
        kafka_bootstrap_servers=parts.kafka.bootstrap,
        jwt_secret=new_key(),
    )
    api = ApiServer(create_app(settings))
    await api.start()
    temporal = ManagedProcess(
        temporal_spec(
            port=port,
            ui_port=free_port(),
            metrics_port=free_port(),
            db_file=None,
            namespace="default",
            log_path=folder / "temporal.log",
            restart=False,
        ),
        echo=lambda _: None,
    )
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=parts.headers, timeout=30) as http:
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert health.json()["detail"] == "unavailable: temporal"
            run = await http.get("/api/v1/runs/probe-" + "0" * 32)
            assert run.status_code == 503 and run.json()["component"] == "temporal"

            await temporal.start()
            await wait_temporal_ready(settings.effective_temporal_address, "default")
            await healthy_again(http)
            assert (await http.get("/api/v1/runs/probe-" + "0" * 32)).status_code == 404
    finally:
        await api.stop()
        await temporal.stop(10)
