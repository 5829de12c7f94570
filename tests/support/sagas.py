"""Saga definitions and waits for the saga tests."""

from __future__ import annotations

import asyncio
from typing import Any

from crucible.core.events import EventType, RunEvent
from crucible.core.store import RunStore, fetch_all_events

#: Retries in tenths of seconds, so failing steps fail fast.
FAST_RETRY = {"max_attempts": 2, "initial_interval_s": 0.05, "max_interval_s": 0.1}
TOKEN = "saga-s3cret-token"


def http(method: str, url: str, body: Any = None, **extra: Any) -> dict[str, Any]:
    return {"http": {"method": method, "url": url, "body": body, **extra}}


def shop_steps(url: str) -> list[dict[str, Any]]:
    """Create an order, reserve its stock, take the payment, ship: the order id and the item
    captured by step 1 flow into every later step and every compensation."""
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
            "compensation": http("POST", f"{url}/stock/{{{{sku}}}}", {"change": "{{qty}}"}),
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


def states(events: list[RunEvent]) -> list[str]:
    """The states the run went through, in order."""
    return [e.data["to"] for e in events if e.type == EventType.STATE_CHANGED]


async def wait_for_state(
    store: RunStore, run_id: str, state: str, *, times: int = 1, timeout: float = 20
) -> list[RunEvent]:
    """Wait until the run's log shows it entered ``state`` (``times`` times); its events then."""
    async with asyncio.timeout(timeout):
        while True:
            events = list(await fetch_all_events(store, run_id))
            if states(events).count(state) >= times:
                return events
            await asyncio.sleep(0.05)
