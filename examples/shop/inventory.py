"""The inventory service: holds stock, reserves it for orders and releases it again.

Choreography (events on the inventory topic):

- ``OrderCreated`` reserves the stock: ``InventoryReserved``, or ``InventoryRejected`` when there
  is not enough (or the SKU is unknown).
- ``PaymentFailed`` releases the reservation, its compensation: ``InventoryReleased``. With
  ``{"compensation": false}`` it releases nothing and publishes nothing.

``POST /reservations`` and ``DELETE /reservations/{order_id}`` do the same for a saga workflow
that drives the services over HTTP; their events carry ``"choreography": false``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from examples.shop.events import (
    INVENTORY_REJECTED,
    INVENTORY_RELEASED,
    INVENTORY_RESERVED,
    ORDER_CREATED,
    PAYMENT_FAILED,
    Event,
    ShopTopics,
    now_iso,
)
from examples.shop.service import IdempotencyKey, ShopService, event_key, service_app

log = logging.getLogger(__name__)

RESERVED, RELEASED = "RESERVED", "RELEASED"
DEFAULT_STOCK: Mapping[str, int] = {"ITEM-1": 100, "ITEM-2": 100, "ITEM-3": 5}


class ReservationCreate(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)
    #: Passed on in ``InventoryReserved`` for the payment.
    amount: float | None = Field(default=None, gt=0)


@dataclass
class Reservation:
    order_id: str
    sku: str
    quantity: int
    status: str
    created_at: str
    updated_at: str


class Unavailable(Exception):
    """The stock cannot cover a reservation."""


class InventoryService(ShopService):
    name = "inventory"

    def __init__(self, bootstrap: str, topics: ShopTopics, *, stock: Mapping[str, int] | None = None) -> None:
        super().__init__(bootstrap, topics)
        self.initial_stock = dict(DEFAULT_STOCK if stock is None else stock)
        self.stock = dict(self.initial_stock)
        self.reservations: dict[str, Reservation] = {}

    def consumes(self) -> Sequence[str]:
        return (self.topics.orders, self.topics.payments)

    def reset_data(self) -> None:
        self.stock = dict(self.initial_stock)
        self.reservations.clear()

    def stock_level(self, sku: str) -> dict[str, Any]:
        if sku not in self.stock:
            raise HTTPException(404, f"no SKU {sku}")
        reserved = sum(
            r.quantity for r in self.reservations.values() if r.sku == sku and r.status == RESERVED
        )
        return {"sku": sku, "available": self.stock[sku], "reserved": reserved}

    def get(self, order_id: str) -> Reservation:
        if (reservation := self.reservations.get(order_id)) is None:
            raise HTTPException(404, f"no reservation for order {order_id}")
        return reservation

    async def _reserve(
        self, order_id: str, sku: str, quantity: int, *, amount: float | None, choreography: bool
    ) -> Reservation:
        """Take the stock off and publish ``InventoryReserved``."""
        if order_id in self.reservations:
            raise Unavailable(f"order {order_id} has a reservation already")
        if sku not in self.stock:
            raise Unavailable(f"no SKU {sku}")
        if self.stock[sku] < quantity:
            raise Unavailable(f"{self.stock[sku]} of {sku} in stock, {quantity} asked for")
        self.stock[sku] -= quantity
        now = now_iso()
        reservation = self.reservations[order_id] = Reservation(order_id, sku, quantity, RESERVED, now, now)
        await self.publish(
            self.topics.inventory,
            INVENTORY_RESERVED,
            order_id,
            choreography=choreography,
            sku=sku,
            quantity=quantity,
            amount=amount,
        )
        return reservation

    async def _release(self, reservation: Reservation, *, choreography: bool) -> bool:
        """Put the stock back and publish ``InventoryReleased``; False if it was released already."""
        if reservation.status == RELEASED:
            return False
        reservation.status, reservation.updated_at = RELEASED, now_iso()
        self.stock[reservation.sku] += reservation.quantity
        await self.publish(
            self.topics.inventory,
            INVENTORY_RELEASED,
            reservation.order_id,
            choreography=choreography,
            sku=reservation.sku,
            quantity=reservation.quantity,
        )
        return True

    async def reserve_by_call(self, body: ReservationCreate, key: str | None) -> JSONResponse:
        async def perform() -> Reservation:
            try:
                return await self._reserve(
                    body.order_id, body.sku, body.quantity, amount=body.amount, choreography=False
                )
            except Unavailable as e:
                raise HTTPException(409, str(e)) from None

        return await self.act_by_call("reserve_stock", key, perform)

    async def release_by_call(self, order_id: str, key: str | None) -> JSONResponse:
        async def release(reservation: Reservation) -> bool:
            return await self._release(reservation, choreography=False)

        return await self.compensate_by_call("release_stock", key, lambda: self.get(order_id), release)

    async def on_event(self, event: Event) -> None:
        order_id = event["order_id"]
        if event["type"] == ORDER_CREATED:
            sku, quantity = str(event.get("sku")), int(event.get("quantity") or 0)
            try:
                await self._reserve(order_id, sku, quantity, amount=event.get("amount"), choreography=True)
            except Unavailable as e:
                await self.publish(
                    self.topics.inventory,
                    INVENTORY_REJECTED,
                    order_id,
                    choreography=True,
                    sku=sku,
                    quantity=quantity,
                    reason=str(e),
                )
                return
            self.ledger.record("action", "reserve_stock", order_id, key=event_key(event), source="kafka")
        elif event["type"] == PAYMENT_FAILED and (reservation := self.reservations.get(order_id)) is not None:
            if not self.faults.compensation:
                log.info("inventory: compensation is off; keeping the stock of order %s", order_id)
                return
            if await self._release(reservation, choreography=True):
                self.ledger.record(
                    "compensation", "release_stock", order_id, key=event_key(event), source="kafka"
                )


def create_inventory_app(service: InventoryService) -> FastAPI:
    stock = APIRouter(prefix="/stock", tags=["stock"])
    reservations = APIRouter(prefix="/reservations", tags=["reservations"])

    @stock.get("/{sku}")
    async def get_stock(sku: str) -> dict[str, Any]:
        return service.stock_level(sku)

    @reservations.post("", status_code=201)
    async def reserve_stock(body: ReservationCreate, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """Reserve stock for an order (409 when there is not enough, or the order has a reservation)."""
        return await service.reserve_by_call(body, idempotency_key)

    @reservations.get("/{order_id}")
    async def get_reservation(order_id: str) -> dict[str, Any]:
        return asdict(service.get(order_id))

    @reservations.delete("/{order_id}")
    async def release_stock(order_id: str, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """The compensation of ``POST /reservations``."""
        return await service.release_by_call(order_id, idempotency_key)

    return service_app(service, stock, reservations, title="Shop: inventory")
