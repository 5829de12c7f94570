"""What the three services share: the record of what each did, idempotency, fault switches, admin routes.

Every action and compensation a service performs is recorded once, with the idempotency key it ran
under: the ``Idempotency-Key`` header of an HTTP call, or ``"<EventType>/<event_id>"`` of the event
that triggered it. A call that repeats a key which already succeeded gets the first answer again
(with ``Idempotent-Replayed: true``) and is not recorded again. A compensation called again with a
new key, on something already compensated, is recorded with ``changed: false``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from fastapi import APIRouter, Body, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from examples.shop.bus import ServiceBus
from examples.shop.events import Event, ShopTopics, new_event, now_iso

log = logging.getLogger(__name__)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
REPLAYED = {"Idempotent-Replayed": "true"}
#: Marks the answer of a compensation endpoint that did nothing because ``compensation`` is off.
SKIPPED = {"X-Compensation-Skipped": "true"}

Kind = Literal["action", "compensation"]
Source = Literal["http", "kafka"]


class OrderItem(Protocol):
    """An order, a reservation or a payment: a dataclass with the order id."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    order_id: str


Item = TypeVar("Item", bound=OrderItem)


class Faults(BaseModel):
    """The switches of ``POST /admin/faults``; every service has these."""

    model_config = ConfigDict(extra="forbid", strict=True)

    compensation: bool = True
    fail_compensations: bool = False
    fail_actions: bool = False


@dataclass(frozen=True)
class Record:
    seq: int
    at: str
    service: str
    kind: Kind
    name: str
    order_id: str
    idempotency_key: str | None
    source: Source
    changed: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Ledger:
    """The records, the answers kept for idempotency keys, and the events already handled."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.records: list[Record] = []
        self._answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._handled: set[str] = set()
        self._seq = itertools.count(1)

    def record(
        self,
        kind: Kind,
        name: str,
        order_id: str,
        *,
        key: str | None,
        source: Source,
        changed: bool = True,
        **detail: Any,
    ) -> None:
        self.records.append(
            Record(
                next(self._seq), now_iso(), self.service, kind, name, order_id, key, source, changed, detail
            )
        )

    def replay(self, name: str, key: str | None) -> JSONResponse | None:
        """The answer given earlier to ``name`` under ``key``, if that call succeeded."""
        if key is None or (name, key) not in self._answers:
            return None
        status, body = self._answers[name, key]
        return JSONResponse(body, status_code=status, headers=REPLAYED)

    def answer(self, name: str, key: str | None, body: dict[str, Any], status: int = 200) -> JSONResponse:
        """Answer a call that succeeded, keeping the answer for a repeat of its key."""
        if key is not None:
            self._answers[name, key] = (status, body)
        return JSONResponse(body, status_code=status)

    def first_delivery(self, event: Event) -> bool:
        """False for an event handled before (delivery is at least once)."""
        if event["event_id"] in self._handled:
            return False
        self._handled.add(event["event_id"])
        return True

    def clear(self) -> None:
        self.records.clear()
        self._answers.clear()
        self._handled.clear()
        self._seq = itertools.count(1)


def event_key(event: Event) -> str:
    """The idempotency key recorded for work an event triggered."""
    return f"{event['type']}/{event['event_id']}"


class ShopService:
    """One service: its data, its ledger and faults, and its connection to the broker.

    A subclass names the topics it consumes, handles their events in :meth:`on_event`, and puts
    its data back in :meth:`reset_data`. Handlers and routes that change data hold :attr:`lock`,
    so an HTTP call and an event never interleave on one order.
    """

    name: ClassVar[str]
    faults_model: ClassVar[type[Faults]] = Faults

    def __init__(self, bootstrap: str, topics: ShopTopics) -> None:
        self.topics = topics
        self.faults = self.faults_model()
        self.ledger = Ledger(self.name)
        self.lock = asyncio.Lock()
        self.bus = ServiceBus(bootstrap, service=self.name, consumes=self.consumes(), handler=self._handle)

    def consumes(self) -> Sequence[str]:
        return ()

    async def on_event(self, event: Event) -> None:
        """React to a choreography event that has not been handled before."""

    def reset_data(self) -> None:
        """Put the service's data back as it was at start."""

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.stop()

    async def _handle(self, event: Event) -> None:
        if event.get("choreography") is not True or not isinstance(event.get("event_id"), str):
            return
        async with self.lock:
            if self.ledger.first_delivery(event):
                await self.on_event(event)

    async def publish(
        self, topic: str, type_: str, order_id: str, *, choreography: bool, **fields: Any
    ) -> None:
        await self.bus.publish(
            topic, new_event(type_, order_id, service=self.name, choreography=choreography, **fields)
        )

    async def act_by_call(
        self, name: str, key: str | None, perform: Callable[[], Awaitable[OrderItem]]
    ) -> JSONResponse:
        """Run an HTTP action: 500 while ``fail_actions`` is on, once per idempotency key, recorded; 201."""
        async with self.lock:
            self.check_action()
            if (replay := self.ledger.replay(name, key)) is not None:
                return replay
            item = await perform()
            self.ledger.record("action", name, item.order_id, key=key, source="http")
            return self.ledger.answer(name, key, asdict(item), 201)

    async def compensate_by_call(
        self, name: str, key: str | None, item: Callable[[], Item], undo: Callable[[Item], Awaitable[bool]]
    ) -> JSONResponse:
        """Run an HTTP compensation: 500 while ``fail_compensations`` is on, once per idempotency key.

        ``undo`` says whether it changed anything. With ``compensation`` off it answers the item as it
        is, with an ``X-Compensation-Skipped`` header, and records nothing.
        """
        async with self.lock:
            self.check_compensation()
            if (replay := self.ledger.replay(name, key)) is not None:
                return replay
            found = item()
            if not self.faults.compensation:
                return JSONResponse(asdict(found), headers=SKIPPED)
            changed = await undo(found)
            self.ledger.record("compensation", name, found.order_id, key=key, source="http", changed=changed)
            return self.ledger.answer(name, key, asdict(found))

    def check_action(self) -> None:
        """Answer 500 while ``fail_actions`` is on."""
        if self.faults.fail_actions:
            raise HTTPException(500, f"{self.name}: injected fault fail_actions")

    def check_compensation(self) -> None:
        """Answer 500 while ``fail_compensations`` is on."""
        if self.faults.fail_compensations:
            raise HTTPException(500, f"{self.name}: injected fault fail_compensations")

    def reset(self) -> None:
        self.ledger.clear()
        self.faults = self.faults_model()
        self.reset_data()


def admin_router(service: ShopService) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.get("/records")
    async def list_records(order_id: str | None = None) -> dict[str, Any]:
        records = [asdict(r) for r in service.ledger.records if order_id in (None, r.order_id)]
        return {"service": service.name, "records": records}

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return service.faults.model_dump()

    @router.post("/faults")
    async def set_faults(changes: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        try:
            service.faults = service.faults_model.model_validate({**service.faults.model_dump(), **changes})
        except ValidationError as e:
            raise HTTPException(422, e.errors(include_url=False, include_context=False)) from None
        log.info("%s faults: %s", service.name, service.faults.model_dump())
        return service.faults.model_dump()

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        async with service.lock:
            service.reset()
        return {"service": service.name, "faults": service.faults.model_dump()}

    return router


def service_app(service: ShopService, *routers: APIRouter, title: str) -> FastAPI:
    app = FastAPI(title=title, version="1.0.0")
    for router in routers:
        app.include_router(router)
    app.include_router(admin_router(service))

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service.name}

    return app
