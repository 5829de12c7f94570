"""The shop's topics and the events the three services choreograph the order saga with.

Every message value is one JSON object, keyed by the order id (so one order's events on a topic
stay on one partition, in order), with a ``type`` header that repeats the event type::

    {"type": "OrderCreated", "order_id": "…", "at": "2025-01-01T12:00:00.000000+00:00",
     "event_id": "…", "service": "order", "choreography": true, "sku": "ITEM-1", ...}

``choreography`` is false on events that an HTTP call (a saga *workflow* driving the services
one endpoint at a time) caused; the services react only to events whose flag is true, so the two
ways of running the saga never act on one order twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_TOPIC_PREFIX = "shop"

ORDER_CREATED = "OrderCreated"
ORDER_CONFIRMED = "OrderConfirmed"
ORDER_CANCELLED = "OrderCancelled"
INVENTORY_RESERVED = "InventoryReserved"
INVENTORY_REJECTED = "InventoryRejected"
INVENTORY_RELEASED = "InventoryReleased"
PAYMENT_SUCCEEDED = "PaymentSucceeded"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"

Event = dict[str, Any]


@dataclass(frozen=True)
class ShopTopics:
    """One topic per publishing service: each service writes only to its own."""

    orders: str
    inventory: str
    payments: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_TOPIC_PREFIX) -> ShopTopics:
        return cls(orders=f"{prefix}.orders", inventory=f"{prefix}.inventory", payments=f"{prefix}.payments")

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.orders, self.inventory, self.payments)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_event(type_: str, order_id: str, *, service: str, choreography: bool, **fields: Any) -> Event:
    return {
        "type": type_,
        "order_id": order_id,
        "at": now_iso(),
        "event_id": uuid.uuid4().hex,
        "service": service,
        "choreography": choreography,
        **fields,
    }


def encode_event(event: Event) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def decode_event(value: bytes | None) -> Event | None:
    """The event in a message value, or None for anything that is not one of ours."""
    if value is None:
        return None
    try:
        event = json.loads(value)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    if not isinstance(event.get("order_id"), str):
        return None
    return event
