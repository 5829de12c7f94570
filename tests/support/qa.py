"""Helpers for QA run tests: targets served in the test's loop, waiting for runs, reading logs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client, WorkflowHandle

from crucible.core.events import RunEvent
from crucible.core.qa.models import QaPackageRunInput
from crucible.core.qa.store import QaStore
from crucible.core.runs import new_run_id
from crucible.core.store import RunStore, fetch_all_events
from crucible.core.temporal import start_run
from crucible.stack.services import free_port
from crucible.workflows.qa_package import KIND, QaPackageRunWorkflow
from tests.support.servers import ApiServer

DEMO_SPEC = Path(__file__).parents[2] / "examples" / "demo_target" / "openapi.yaml"
SPECS = Path(__file__).parents[1] / "data" / "specs"


class HeaderRecorder:
    """ASGI middleware that remembers the headers of every request the target got."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


class InFlight:
    """ASGI middleware that holds each request ``hold_s`` and counts how many it held at once."""

    def __init__(self, app: ASGIApp, hold_s: float = 0.02) -> None:
        self.app = app
        self.hold_s = hold_s
        self.requests = 0
        self.now = 0
        self.most = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.requests += 1
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.hold_s)
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[ApiServer]:
    """Serve an ASGI app on a free loopback port for the duration of the block."""
    server = ApiServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_closed(api: httpx.AsyncClient, run_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll the run until it is no longer RUNNING; its public record."""
    async with asyncio.timeout(timeout):
        while True:
            response = await api.get(f"/api/v1/runs/{run_id}")
            if response.status_code == 200 and response.json()["status"] != "RUNNING":
                return dict(response.json())
            await asyncio.sleep(0.2)


async def start_qa_run(
    client: Client,
    store: RunStore,
    *,
    task_queue: str,
    spec: dict[str, Any],
    request: QaPackageRunInput,
) -> WorkflowHandle[Any, Any]:
    """Start a QA run on ``task_queue`` the way the API does: its row first, then the workflow."""
    run_id = new_run_id(KIND)
    await QaStore(store.engine).create(run_id, request={"base_url": request.base_url}, spec=spec)
    return await start_run(
        client, QaPackageRunWorkflow.run, request, kind=KIND, task_queue=task_queue, run_id=run_id
    )


async def events_of(store: RunStore, run_id: str) -> list[RunEvent]:
    return list(await fetch_all_events(store, run_id))


def assert_contiguous(events: list[RunEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@asynccontextmanager
async def httpbin() -> AsyncIterator[str]:
    """PyPI's httpbin, a real service with a Swagger 2.0 spec at /spec.json, in its own process."""
    port = free_port()
    code = f"from httpbin import app; app.run(host='127.0.0.1', port={port}, threaded=True)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(30):
            while True:
                try:
                    if (await http.get(f"{url}/spec.json")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield url
    finally:
        process.kill()
        await process.wait()
