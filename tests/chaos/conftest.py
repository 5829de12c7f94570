"""Real parts for chaos experiments: Prometheus, a chaos proxy process, a target, and an API and
worker whose settings point at them, on a task queue of their own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from crucible.api.app import create_app
from crucible.core.config import Settings
from crucible.core.kafka import EventPublisher
from crucible.core.store import RunStore
from crucible.core.targets import TargetClient
from crucible.stack.services import free_port
from crucible.worker import WorkerDeps, build_worker
from tests.support.chaos import CHAOS_COMMANDS, KUBE_TOKEN, VICTIM_MARKER, ChaosProxyProcess, Cluster, Target
from tests.support.dev import Child
from tests.support.kube_api import KubeApi, kube_api_server, write_kubeconfig
from tests.support.prometheus import PrometheusServer
from tests.support.servers import ApiServer

CHAOS_QUEUE = "crucible-chaos-tests"


@pytest.fixture(scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A test server speaking the Kubernetes API: a ReplicaSet of three `web` pods."""
    api = KubeApi(KUBE_TOKEN, replace_after_s=0.5, ready_after_s=0.5)
    api.replica_set("default", "web", {"app": "web"}, 3)
    async with kube_api_server(api) as url:
        yield Cluster(api, write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", url, KUBE_TOKEN))


@pytest.fixture(scope="session")
def chaos_settings(settings: Settings, prometheus: PrometheusServer, cluster: Cluster) -> Settings:
    return settings.model_copy(
        update={
            "prometheus_url": prometheus.url,
            "task_queue": CHAOS_QUEUE,
            "chaos_commands": CHAOS_COMMANDS,
            "fault_processes": VICTIM_MARKER,
            "kubeconfig": cluster.kubeconfig,
        }
    )


@pytest.fixture(scope="session")
async def chaos_worker(
    client: Client,
    store: RunStore,
    publisher: EventPublisher,
    chaos_settings: Settings,
    http: TargetClient,
    probe_metrics_port: int,
) -> AsyncIterator[Worker]:
    """A worker for experiments, in this process: its steady probes' metrics are scraped."""
    deps = WorkerDeps(store=store, publisher=publisher, settings=chaos_settings, http=http)
    worker = build_worker(client, deps, task_queue=CHAOS_QUEUE, shutdown_grace=timedelta(seconds=1))
    async with worker:
        yield worker


@pytest.fixture(scope="session")
async def chaos_api_server(chaos_settings: Settings) -> AsyncIterator[ApiServer]:
    server = ApiServer(create_app(chaos_settings))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def chaos_api(
    chaos_api_server: ApiServer, chaos_worker: Worker, auth_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=chaos_api_server.url, headers=auth_headers, timeout=30) as api:
        yield api


@pytest.fixture(scope="session")
async def chaos_proxy() -> AsyncIterator[ChaosProxyProcess]:
    """``python -m crucible.chaos_proxy`` in a process of its own, as in production."""
    proxy = await ChaosProxyProcess.start()
    yield proxy
    await proxy.stop()


@pytest.fixture(scope="session")
async def target(prometheus: PrometheusServer) -> AsyncIterator[Target]:
    """The demo target API in a process of its own, its metrics scraped by Prometheus."""
    port = free_port()
    child = await Child.start("--port", str(port), env=dict(os.environ), module="examples.demo_target")
    try:
        await child.wait_for("Uvicorn running", timeout=30)
        await prometheus.add_target("demo-target", f"127.0.0.1:{port}")
        yield Target(port)
    finally:
        await child.terminate()
