"""PostgreSQL or the broker going away while the API is up: 503 naming it, then recovery.

This module has its own PostgreSQL, broker and API, so stopping them disturbs no other test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from crucible.api.app import create_app
from crucible.core.config import load_settings
from crucible.stack.process import ManagedProcess
from crucible.stack.services import free_port, temporal_spec, wait_temporal_ready
from tests.conftest import EVENTS_TOPIC, make_settings
from tests.support.servers import ApiServer, KafkaBroker, PostgresServer


class Parts:
    def __init__(self, postgres: PostgresServer, kafka: KafkaBroker, api: ApiServer) -> None:
        self.postgres, self.kafka, self.api = postgres, kafka, api


@pytest.fixture(scope="module")
async def parts(tmp_path_factory: pytest.TempPathFactory, client: Client) -> AsyncIterator[Parts]:
    folder: Path = tmp_path_factory.mktemp("outages")
    postgres = await PostgresServer.launch(folder)
    kafka = await KafkaBroker.launch(folder, topic=EVENTS_TOPIC)
    settings = make_settings(home=folder, temporal=client, postgres=postgres, kafka=kafka)
    api = ApiServer(create_app(settings))
    await api.start()
    yield Parts(postgres, kafka, api)
    await api.stop()
    await kafka.stop()
    await postgres.stop()


@pytest.fixture
async def http(parts: Parts) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=parts.api.url, timeout=30) as client:
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
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
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
