"""Saga definitions and waits for the saga tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle

from crucible.api.routes.sagas import saga_input
from crucible.api.saga_models import SagaCreate
from crucible.core.config import Settings
from crucible.core.events import EventType, RunEvent
from crucible.core.runs import new_run_id
from crucible.core.sagas.models import SagaResult
from crucible.core.secrets import SecretStore, secret_box
from crucible.core.store import RunStore, fetch_all_events
from crucible.core.temporal import start_run
from crucible.workflows.saga import KIND, SagaWorkflow

#: Retries in tenths of seconds, so failing steps fail fast.
FAST_RETRY = {"max_attempts": 2, "initial_interval_s": 0.05, "max_interval_s": 0.1}
TOKEN = "saga-s3cret-token"


def http(method: str, url: str, body: Any = None, **extra: Any) -> dict[str, Any]:
    return {"http": {"method": method, "url": url, "body": body, **extra}}


def shop_steps(url: str) -> list[dict[str, Any]]:
    """Create an order, reserve its stock, take the payment, ship: the order id and the item
    captured by step 1 flow into every later step and every compensation. Each compensation
    changes nothing where its action did not take effect."""
    return [
        {
            "name": "create order",
            "action": {
                **http("POST", f"{url}/orders", {"customer": "c-1", "saga": "{{run_id}}"}),
                "capture": {"order_id": "$.id", "sku": "$.items[0].sku", "qty": "$.items[0].qty"},
            },
            "compensation": http("DELETE", f"{url}/orders/{{{{order_id}}}}"),
            "verify": {
                **http("GET", f"{url}/orders/{{{{order_id}}}}"),
                "expect": {"status": 200, "json": {"$.status": "CANCELLED", "$.id": "{{order_id}}"}},
            },
            "retry": FAST_RETRY,
        },
        {
            "name": "reserve stock",
            "action": http(
                "POST", f"{url}/stock/{{{{sku}}}}", {"change": "-{{qty}}", "order": "{{order_id}}"}
            ),
            "compensation": http("POST", f"{url}/stock/{{{{sku}}}}/release", {"order": "{{order_id}}"}),
            "verify": {**http("GET", f"{url}/stock/{{{{sku}}}}"), "expect": {"json": {"$.count": 10}}},
            "retry": FAST_RETRY,
        },
        {
            "name": "take payment",
            "action": http(
                "POST",
                f"{url}/payments?order={{{{order_id}}}}",
                {"order": "{{order_id}}", "qty": "{{qty}}"},
                headers={"Authorization": f"Bearer {TOKEN}", "X-Order": "{{order_id}}"},
            ),
            "compensation": http("POST", f"{url}/refunds", {"order": "{{order_id}}"}),
            "retry": FAST_RETRY,
        },
        {
            "name": "ship",
            "action": http("POST", f"{url}/shipments", {"order": "{{order_id}}"}),
            "compensation": http("POST", f"{url}/shipments/cancel", {"order": "{{order_id}}"}),
            "retry": FAST_RETRY,
        },
    ]


async def start_saga(
    client: Client,
    store: RunStore,
    settings: Settings,
    steps: list[dict[str, Any]],
    *,
    task_queue: str | None = None,
    heartbeat_timeout_s: float | None = None,
) -> WorkflowHandle[SagaWorkflow, SagaResult]:
    """Start a saga as the API does, on another task queue or with another heartbeat timeout."""
    body = SagaCreate.model_validate({"name": "order", "steps": steps})
    body.check()
    secrets = SecretStore(store.engine, secret_box(settings))
    if heartbeat_timeout_s is not None:
        settings = settings.model_copy(update={"saga_heartbeat_timeout_s": heartbeat_timeout_s})
    arg = await saga_input(body, secrets, settings)
    queue = task_queue or settings.task_queue
    return await start_run(
        client, SagaWorkflow.run, arg, kind=KIND, task_queue=queue, run_id=new_run_id(KIND)
    )


def states(events: list[RunEvent]) -> list[str]:
    """The states the run went through, in order."""
    return [e.data["to"] for e in events if e.type == EventType.STATE_CHANGED]


def state_data(events: list[RunEvent], state: str) -> dict[str, Any]:
    """The data of the first ``STATE_CHANGED`` event into ``state``."""
    return next(e.data for e in events if e.type == EventType.STATE_CHANGED and e.data["to"] == state)


async def wait_for_state(
    store: RunStore, run_id: str, state: str, *, times: int = 1, timeout: float = 20
) -> list[RunEvent]:
    """Wait until the run's log shows it entered ``state`` (``times`` times); its events then."""
    return await _wait(store, run_id, lambda events: states(events).count(state) >= times, timeout)


async def wait_for_event(
    store: RunStore, run_id: str, type: str, *, times: int = 1, timeout: float = 20
) -> list[RunEvent]:
    """Wait until the run's log holds ``times`` events of ``type``; its events then."""
    return await _wait(store, run_id, lambda events: [e.type for e in events].count(type) >= times, timeout)


async def _wait(
    store: RunStore, run_id: str, done: Callable[[list[RunEvent]], bool], timeout: float
) -> list[RunEvent]:
    async with asyncio.timeout(timeout):
        while True:
            events = list(await fetch_all_events(store, run_id))
            if done(events):
                return events
            await asyncio.sleep(0.05)
