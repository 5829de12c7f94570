"""The payment service: charges orders whose stock is reserved, and refunds them.

Choreography (events on the payments topic): ``InventoryReserved`` charges the order's amount,
``PaymentSucceeded``; with ``{"fail_payments": true}`` the charge is declined, ``PaymentFailed``,
which starts the other services' compensations.

``POST /payments`` and ``POST /payments/{order_id}/refund`` (the compensation) do the same for a
saga workflow that drives the services over HTTP; their events carry ``"choreography": false``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from examples.shop.events import (
    INVENTORY_RESERVED,
    PAYMENT_FAILED,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    Event,
    ShopTopics,
    now_iso,
)
from examples.shop.service import Faults, IdempotencyKey, ShopService, event_key, service_app

SUCCEEDED, FAILED, REFUNDED = "SUCCEEDED", "FAILED", "REFUNDED"
DECLINED = "payment declined (fail_payments is on)"


class PaymentFaults(Faults):
    fail_payments: bool = False


class PaymentCreate(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    amount: float = Field(gt=0)


@dataclass
class Payment:
    payment_id: str
    order_id: str
    amount: float
    status: str
    created_at: str
    updated_at: str
    reason: str | None = None


class PaymentService(ShopService):
    name = "payment"
    faults_model = PaymentFaults
    faults: PaymentFaults

    def __init__(self, bootstrap: str, topics: ShopTopics) -> None:
        super().__init__(bootstrap, topics)
        self.payments: dict[str, Payment] = {}

    def consumes(self) -> Sequence[str]:
        return (self.topics.inventory,)

    def reset_data(self) -> None:
        self.payments.clear()

    def get(self, order_id: str) -> Payment:
        if (payment := self.payments.get(order_id)) is None:
            raise HTTPException(404, f"no payment for order {order_id}")
        return payment

    def _charge(self, order_id: str, amount: float) -> Payment:
        """Charge the order, or record the charge as declined while ``fail_payments`` is on."""
        now = now_iso()
        declined = self.faults.fail_payments
        payment = Payment(uuid.uuid4().hex, order_id, amount, FAILED if declined else SUCCEEDED, now, now)
        payment.reason = DECLINED if declined else None
        self.payments[order_id] = payment
        return payment

    async def _publish_outcome(self, payment: Payment, *, choreography: bool) -> None:
        await self.publish(
            self.topics.payments,
            PAYMENT_SUCCEEDED if payment.status == SUCCEEDED else PAYMENT_FAILED,
            payment.order_id,
            choreography=choreography,
            amount=payment.amount,
            **({"reason": payment.reason} if payment.reason else {}),
        )

    async def pay_by_call(self, body: PaymentCreate, key: str | None) -> JSONResponse:
        if self.faults.fail_payments:  # a decline is definite: nothing was charged
            raise HTTPException(402, f"payment: {DECLINED}")

        async def perform() -> Payment:
            if (earlier := self.payments.get(body.order_id)) is not None and earlier.status != FAILED:
                raise HTTPException(409, f"order {body.order_id} has a payment already ({earlier.status})")
            payment = self._charge(body.order_id, body.amount)
            await self._publish_outcome(payment, choreography=False)
            return payment

        return await self.act_by_call("charge_payment", key, perform)

    async def refund_by_call(self, order_id: str, key: str | None) -> JSONResponse:
        async def refund(payment: Payment) -> bool:
            if payment.status != SUCCEEDED:
                return False
            payment.status, payment.updated_at = REFUNDED, now_iso()
            await self.publish(
                self.topics.payments, PAYMENT_REFUNDED, order_id, choreography=False, amount=payment.amount
            )
            return True

        return await self.compensate_by_call("refund_payment", key, lambda: self.get(order_id), refund)

    async def on_event(self, event: Event) -> None:
        if event["type"] != INVENTORY_RESERVED or event["order_id"] in self.payments:
            return
        amount = float(event.get("amount") or 0)
        payment = self._charge(event["order_id"], amount)
        await self._publish_outcome(payment, choreography=True)
        if payment.status == SUCCEEDED:
            self.ledger.record(
                "action", "charge_payment", payment.order_id, key=event_key(event), source="kafka"
            )


def create_payment_app(service: PaymentService) -> FastAPI:
    router = APIRouter(prefix="/payments", tags=["payments"])

    @router.post("", status_code=201)
    async def charge_payment(body: PaymentCreate, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """Charge an order (402 while ``fail_payments`` is on, 500 while ``fail_actions`` is)."""
        return await service.pay_by_call(body, idempotency_key)

    @router.get("/{order_id}")
    async def get_payment(order_id: str) -> dict[str, Any]:
        return asdict(service.get(order_id))

    @router.post("/{order_id}/refund")
    async def refund_payment(order_id: str, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """The compensation of ``POST /payments``."""
        return await service.refund_by_call(order_id, idempotency_key)

    return service_app(service, router, title="Shop: payments")
