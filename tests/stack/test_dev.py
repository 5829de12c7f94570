"""`crucible dev` end to end: up, healthy, joined by a second worker, restarted, stopped clean."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from crucible.core.config import Settings, load_settings
from crucible.core.db import create_engine
from crucible.core.kafka import EventPublisher
from crucible.core.prometheus import PrometheusClient
from crucible.core.store import RunStore
from crucible.worker import WorkerDeps, build_worker
from tests.support.dev import Child, alive, dev_environment, live_processes_mentioning
from tests.support.probe import ProbeInput, ProbeWorkflow
from tests.support.prometheus import PrometheusServer
from tests.support.runs import start_probe
from tests.support.servers import KafkaBroker

pytestmark = pytest.mark.timeout(240)


def activity_pollers(metrics: str) -> float:
    """Activity pollers on the `crucible` task queue, from a worker's Temporal SDK metrics."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("temporal_num_pollers{")
        and 'poller_type="activity_task"' in line
        and 'task_queue="crucible"' in line
    )


async def test_dev_runs_supervises_and_stops_the_whole_stack(tmp_path: Path) -> None:
    home = tmp_path / "state"
    env = dev_environment(home)
    api_url = f"http://127.0.0.1:{env['CRUCIBLE_API_PORT']}"
    started = time.monotonic()
    dev = await Child.start("dev", "--demo", env=env)
    extra_worker: Child | None = None
    try:
        await dev.wait_for(r"^Crucible is up\.", timeout=90)
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{api_url}/healthz")).status_code == 200
        assert time.monotonic() - started < 60

        # A default organisation, team and admin, and a dev API token (0600) that works.
        token_path = home / "dev-token"
        assert oct(token_path.stat().st_mode & 0o777) == "0o600"
        assert f"Dev token      {token_path}" in dev.output and "try: curl -H" in dev.output
        bearer = {"Authorization": f"Bearer {token_path.read_text().strip()}"}
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            assert (await http.get("/api/v1/tokens", headers=bearer)).status_code == 200
            assert (await http.get("/api/v1/tokens")).status_code == 401

        # The README's tour: a QA run against the demo target finds its defect.
        demo = f"http://127.0.0.1:{env['CRUCIBLE_DEMO_PORT']}"
        assert f"Demo target    {demo}" in dev.output
        async with httpx.AsyncClient(base_url=api_url, headers=bearer, timeout=10) as http:
            body = {
                "spec_url": f"{demo}/openapi.json",
                "base_url": demo,
                "headers": {"Authorization": "Bearer x"},
            }
            run_id = (await http.post("/api/v1/qa-runs", json=body)).json()["run_id"]
            async with asyncio.timeout(60):
                while (run := (await http.get(f"/api/v1/runs/{run_id}")).json())["status"] == "RUNNING":
                    await asyncio.sleep(0.3)
        assert (run["status"], run["verdict"]) == ("COMPLETED", "FAILED")

        # The demo shop takes an order and choreographs it to CONFIRMED over the stack's Kafka.
        order = f"http://127.0.0.1:{env['CRUCIBLE_SHOP_ORDER_PORT']}"
        assert f"Demo shop      order {order}" in dev.output
        async with httpx.AsyncClient(base_url=order, timeout=10) as http:
            placed = (await http.post("/orders", json={"sku": "ITEM-1", "quantity": 1})).json()
            async with asyncio.timeout(30):
                while (await http.get(f"/orders/{placed['order_id']}")).json()["status"] != "CONFIRMED":
                    await asyncio.sleep(0.2)
        assert oct((home / "secrets.key").stat().st_mode & 0o777) == "0o600"
        assert f"API docs       {api_url}/docs" in dev.output
        assert f"Temporal UI    http://127.0.0.1:{env['CRUCIBLE_TEMPORAL_UI_PORT']}" in dev.output

        # Prometheus scrapes the stack, and the chaos proxy's control API answers.
        prometheus = f"http://127.0.0.1:{env['CRUCIBLE_PROMETHEUS_PORT']}"
        chaos_proxy = f"http://127.0.0.1:{env['CRUCIBLE_CHAOS_PROXY_PORT']}"
        assert f"Prometheus     {prometheus}" in dev.output
        assert f"Chaos proxy    {chaos_proxy}" in dev.output
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{chaos_proxy}/proxies")).status_code == 200
            # The proxy `demo` forwards to the demo target, for examples/chaos/latency.json.
            through = f"http://127.0.0.1:{env['CRUCIBLE_DEMO_PROXY_PORT']}/health"
            assert (await http.get(through)).status_code == 200
            up = PrometheusClient(http, prometheus)
            async with asyncio.timeout(30):  # targets reach its scrapers every 5 s, then a 5 s scrape
                while len(await up.instant('up{job=~"crucible-api|demo-target"} == 1')) < 2:
                    await asyncio.sleep(0.5)

        stack_env = (home / "stack.env").read_text()
        for key in (
            "TEMPORAL_ADDRESS",
            "DATABASE_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "CRUCIBLE_KAFKA_IDEMPOTENCE=false",
            f"CRUCIBLE_PROMETHEUS_URL={prometheus}",
            f"CRUCIBLE_CHAOS_PROXY_URL={chaos_proxy}",
        ):
            assert key in stack_env
        assert oct((home / "stack.env").stat().st_mode & 0o777) == "0o600"

        # A second `crucible dev` on the same state folder is refused, clearly.
        second = await Child.start("dev", env=env)
        assert await second.wait(timeout=30) == 1
        assert "in use by a running `crucible dev`" in second.output

        # A worker started by hand with only CRUCIBLE_HOME joins the stack.
        hand_env = {k: v for k, v in env.items() if not k.startswith("CRUCIBLE_")}
        hand_env["CRUCIBLE_HOME"] = str(home)
        hand_env["CRUCIBLE_WORKER_METRICS_PORT"] = env["CRUCIBLE_WORKER_METRICS_PORT"]
        extra_worker = await Child.start("worker", env=hand_env)
        temporal = f"127.0.0.1:{env['CRUCIBLE_TEMPORAL_PORT']}"
        await extra_worker.wait_for(
            rf"worker polling task queues 'crucible' and 'crucible-batch' on {temporal}", timeout=60
        )
        assert "is taken; choosing a free one" in extra_worker.output  # the dev worker holds it
        own_port = (await extra_worker.wait_for(r"worker metrics at http://127.0.0.1:(\d+)/metrics"))[1]
        async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(30):
            for port in (env["CRUCIBLE_WORKER_METRICS_PORT"], own_port):  # both are polling
                while activity_pollers((await http.get(f"http://127.0.0.1:{port}/metrics")).text) == 0:
                    await asyncio.sleep(0.2)
            assert "crucible_api_requests_total" in (await http.get(f"{api_url}/metrics")).text
        assert await extra_worker.terminate() == 0

        # A crashed worker is restarted, and the crash shows in the log.
        pids = dev.child_pids()
        first_worker = pids["worker"][-1]
        mark = len(dev.lines)
        os.kill(first_worker, signal.SIGKILL)
        await dev.wait_for(
            r"^worker\s*\| \[crucible\] exited unexpectedly with code -9; restarting", start=mark
        )
        await dev.wait_for(r"^worker\s*\| \[crucible\] started \(pid \d+\)", start=mark)
        assert dev.child_pids()["worker"][-1] != first_worker
        assert "exited unexpectedly" in (home / "logs" / "worker.log").read_text()

        # SIGTERM stops everything within 10 s and leaves nothing behind.
        all_pids = [pid for group in dev.child_pids().values() for pid in group]
        stopping = time.monotonic()
        assert await dev.terminate(timeout=30) == 0
        assert time.monotonic() - stopping < 10
        assert not [pid for pid in all_pids if alive(pid)]
        assert live_processes_mentioning(str(home)) == []
        assert not (home / "stack.env").exists()
    finally:
        if extra_worker is not None:
            await extra_worker.kill()
        await dev.kill()


async def test_a_restarted_stack_keeps_its_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "state"
    env = dev_environment(home)
    api_url = f"http://127.0.0.1:{env['CRUCIBLE_API_PORT']}"
    dev = await Child.start("dev", env=env)
    try:
        await dev.wait_for(r"^Crucible is up\.", timeout=90)

        # Join the stack the way a hand-started worker does: through stack.env.
        monkeypatch.setenv("CRUCIBLE_HOME", str(home))
        for name in ("TEMPORAL_ADDRESS", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            monkeypatch.delenv(name, raising=False)
        settings = load_settings()
        assert settings.temporal_address == f"127.0.0.1:{env['CRUCIBLE_TEMPORAL_PORT']}"
        assert settings.kafka_idempotence is False

        client = await Client.connect(settings.effective_temporal_address)
        engine = create_engine(settings.effective_database_url)
        publisher = EventPublisher(
            settings.effective_kafka_bootstrap_servers, topic=settings.kafka_events_topic, idempotence=False
        )
        try:
            worker = build_worker(
                client, WorkerDeps(RunStore(engine), publisher), task_queue="probe", workflows=[ProbeWorkflow]
            )
            async with worker:
                handle = await start_probe(client, "probe", ProbeInput(steps=2))
                await handle.result()
        finally:
            await publisher.stop()
            await engine.dispose()
        assert await dev.terminate() == 0

        dev = await Child.start("dev", env=env)
        await dev.wait_for(r"^Crucible is up\.", timeout=90)
        bearer = {"Authorization": f"Bearer {(home / 'dev-token').read_text().strip()}"}
        async with httpx.AsyncClient(base_url=api_url, headers=bearer, timeout=10) as http:
            listed = (await http.get("/api/v1/runs")).json()["items"]
            assert [r["run_id"] for r in listed] == [handle.id]
            run = (await http.get(f"/api/v1/runs/{handle.id}")).json()
            assert (run["status"], run["last_seq"]) == ("COMPLETED", 4)
            events = (await http.get(f"/api/v1/runs/{handle.id}/events")).json()
            assert [e["type"] for e in events["items"]] == ["REQUESTED", "STEP", "STEP", "COMPLETE"]
        restarted = await Client.connect(settings.effective_temporal_address)
        description = await restarted.get_workflow_handle(handle.id).describe()
        assert description.status is not None and description.status.name == "COMPLETED"
        assert await dev.terminate() == 0
    finally:
        await dev.kill()


async def test_parts_named_in_the_environment_are_used_not_started(
    tmp_path: Path, settings: Settings, kafka: KafkaBroker, prometheus: PrometheusServer
) -> None:
    home = tmp_path / "state"
    env = dev_environment(home)
    env.update(
        TEMPORAL_ADDRESS=settings.effective_temporal_address,
        DATABASE_URL=settings.effective_database_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap,
        CRUCIBLE_KAFKA_IDEMPOTENCE="false",
        CRUCIBLE_PROMETHEUS_URL=prometheus.url,
        CRUCIBLE_CHAOS_PROXY_URL="http://127.0.0.1:8474",
    )
    dev = await Child.start("dev", env=env)
    try:
        await dev.wait_for(r"^Crucible is up\.", timeout=90)
        assert set(dev.child_pids()) == {"worker", "api"}
        stack_env = (home / "stack.env").read_text()
        assert f"TEMPORAL_ADDRESS={settings.effective_temporal_address}" in stack_env
        assert f"CRUCIBLE_PROMETHEUS_URL={prometheus.url}" in stack_env
        assert "CRUCIBLE_CHAOS_PROXY_URL=http://127.0.0.1:8474" in stack_env
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(f"http://127.0.0.1:{env['CRUCIBLE_API_PORT']}/healthz")
            assert health.status_code == 200, health.text
        assert await dev.terminate() == 0
    finally:
        await dev.kill()
