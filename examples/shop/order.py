"""The order service: takes orders, and confirms or cancels them as the saga's events come back.

Choreography (events on the orders topic):

- ``POST /orders`` publishes ``OrderCreated``.
- ``PaymentSucceeded`` confirms the order: ``OrderConfirmed``.
- ``InventoryReleased`` or ``InventoryRejected`` cancels it: ``OrderCancelled``.
- ``PaymentFailed`` cancels it too, but only once the inventory service has released the stock
  (``InventoryReleased``), or after ``release_wait_s`` without it (inventory's compensation is off):
  that keeps ``OrderCancelled`` after ``InventoryReleased`` in time.

Cancelling is this service's compensation: ``{"compensation": false}`` stops it, from events and
from ``POST /orders/{order_id}/cancel`` alike.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from examples.shop.events import (
    INVENTORY_REJECTED,
    INVENTORY_RELEASED,
    ORDER_CANCELLED,
    ORDER_CONFIRMED,
    ORDER_CREATED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    Event,
    ShopTopics,
    now_iso,
)
from examples.shop.service import IdempotencyKey, ShopService, event_key, service_app

log = logging.getLogger(__name__)

PENDING, CONFIRMED, CANCELLED = "PENDING", "CONFIRMED", "CANCELLED"
UNIT_PRICE = 10.0
DEFAULT_RELEASE_WAIT_S = 2.0


class OrderCreate(BaseModel):
    order_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)
    #: Defaults to ``quantity * UNIT_PRICE``.
    amount: float | None = Field(default=None, gt=0)
    #: False for a saga workflow that calls the other services itself: they then ignore this order's events.
    choreography: bool = True


@dataclass
class Order:
    order_id: str
    sku: str
    quantity: int
    amount: float
    status: str
    choreography: bool
    created_at: str
    updated_at: str
    reason: str | None = None


class OrderService(ShopService):
    name = "order"

    def __init__(self, bootstrap: str, topics: ShopTopics, *, release_wait_s: float = DEFAULT_RELEASE_WAIT_S):
        super().__init__(bootstrap, topics)
        self.release_wait_s = release_wait_s
        self.orders: dict[str, Order] = {}
        self._waiting: dict[str, asyncio.Task[None]] = {}

    def consumes(self) -> Sequence[str]:
        return (self.topics.inventory, self.topics.payments)

    def reset_data(self) -> None:
        self._stop_waiting()
        self.orders.clear()

    async def stop(self) -> None:
        self._stop_waiting()
        await super().stop()

    async def create(self, body: OrderCreate, key: str | None) -> JSONResponse:
        async def perform() -> Order:
            order_id = body.order_id or uuid.uuid4().hex
            if order_id in self.orders:
                raise HTTPException(409, f"order {order_id} exists")
            now = now_iso()
            amount = round(body.amount if body.amount is not None else body.quantity * UNIT_PRICE, 2)
            order = Order(order_id, body.sku, body.quantity, amount, PENDING, body.choreography, now, now)
            self.orders[order_id] = order
            await self.publish(
                self.topics.orders,
                ORDER_CREATED,
                order_id,
                choreography=order.choreography,
                sku=order.sku,
                quantity=order.quantity,
                amount=order.amount,
            )
            return order

        return await self.act_by_call("create_order", key, perform)

    async def cancel_by_call(self, order_id: str, key: str | None) -> JSONResponse:
        async def cancel(order: Order) -> bool:
            return await self._cancel(order, "cancelled on request", choreography=False)

        return await self.compensate_by_call("cancel_order", key, lambda: self.get(order_id), cancel)

    def get(self, order_id: str) -> Order:
        if (order := self.orders.get(order_id)) is None:
            raise HTTPException(404, f"no order {order_id}")
        return order

    async def on_event(self, event: Event) -> None:
        order = self.orders.get(event["order_id"])
        if order is None or order.status != PENDING:
            return
        if event["type"] == PAYMENT_SUCCEEDED:
            order.status, order.updated_at = CONFIRMED, now_iso()
            await self.publish(self.topics.orders, ORDER_CONFIRMED, order.order_id, choreography=True)
            self.ledger.record(
                "action", "confirm_order", order.order_id, key=event_key(event), source="kafka"
            )
        elif event["type"] in (INVENTORY_RELEASED, INVENTORY_REJECTED):
            await self._compensate(order, event)
        elif (
            event["type"] == PAYMENT_FAILED
            and self.faults.compensation
            and order.order_id not in self._waiting
        ):
            self._waiting[order.order_id] = asyncio.create_task(self._cancel_later(order, event))

    async def _cancel_later(self, order: Order, event: Event) -> None:
        await asyncio.sleep(self.release_wait_s)
        async with self.lock:
            self._waiting.pop(order.order_id, None)
            if order.status == PENDING:
                log.info("order %s: no InventoryReleased after PaymentFailed; cancelling", order.order_id)
                await self._compensate(order, event)

    async def _compensate(self, order: Order, event: Event) -> None:
        if (waiting := self._waiting.pop(order.order_id, None)) is not None:
            waiting.cancel()
        if not self.faults.compensation:
            log.info("order %s: compensation is off; not cancelling on %s", order.order_id, event["type"])
            return
        reason = event.get("reason") or "the payment failed and the stock was released"
        await self._cancel(order, str(reason), choreography=True)
        self.ledger.record(
            "compensation",
            "cancel_order",
            order.order_id,
            key=event_key(event),
            source="kafka",
            trigger=event["type"],
        )

    async def _cancel(self, order: Order, reason: str, *, choreography: bool) -> bool:
        """Cancel the order and publish ``OrderCancelled``; False if it was cancelled already."""
        if order.status == CANCELLED:
            return False
        order.status, order.reason, order.updated_at = CANCELLED, reason, now_iso()
        await self.publish(
            self.topics.orders, ORDER_CANCELLED, order.order_id, choreography=choreography, reason=reason
        )
        return True

    def _stop_waiting(self) -> None:
        for task in self._waiting.values():
            task.cancel()
        self._waiting.clear()


def create_order_app(service: OrderService) -> FastAPI:
    router = APIRouter(prefix="/orders", tags=["orders"])

    @router.post("", status_code=201)
    async def create_order(body: OrderCreate, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """Take an order; a repeated ``Idempotency-Key`` answers the same order and publishes nothing."""
        return await service.create(body, idempotency_key)

    @router.get("/{order_id}")
    async def get_order(order_id: str) -> dict[str, Any]:
        return asdict(service.get(order_id))

    @router.post("/{order_id}/cancel")
    async def cancel_order(order_id: str, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """The compensation of ``POST /orders``."""
        return await service.cancel_by_call(order_id, idempotency_key)

    return service_app(service, router, title="Shop: orders")
