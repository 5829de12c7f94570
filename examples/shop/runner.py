"""Running the three services in one process: in a test (:func:`running_shop`) or from the command line.

``python -m examples.shop --bootstrap 127.0.0.1:9092 --order-port 8101 --inventory-port 8102
--payment-port 8103`` serves them until SIGTERM or SIGINT, after logging one line that starts
with ``shop ready:``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from dataclasses import dataclass

import uvicorn
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from examples.shop.bus import ensure_topics
from examples.shop.events import DEFAULT_TOPIC_PREFIX, ShopTopics
from examples.shop.inventory import InventoryService, create_inventory_app
from examples.shop.order import DEFAULT_RELEASE_WAIT_S, OrderService, create_order_app
from examples.shop.payment import PaymentService, create_payment_app

log = logging.getLogger("examples.shop")

READY_PREFIX = "shop ready:"
GRACEFUL_SHUTDOWN_S = 2


@dataclass(frozen=True)
class RunningShop:
    """Where a running shop answers, and the topics its services publish to."""

    order_url: str
    inventory_url: str
    payment_url: str
    topics: ShopTopics
    bootstrap: str

    def ready_line(self) -> str:
        return (
            f"{READY_PREFIX} order {self.order_url}, inventory {self.inventory_url}, "
            f"payment {self.payment_url}; topics {', '.join(self.topics.all)} on {self.bootstrap}"
        )


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the signals alone: the process handles them once, for all three."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket bound here, so a taken port is an OSError and port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _HttpService:
    """One app served by uvicorn on this event loop."""

    def __init__(self, app: FastAPI, host: str, port: int, *, log_level: str) -> None:
        self.host = host
        self._sock = _bind(host, port)
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        port = self._sock.getsockname()[1]
        return f"http://[{self.host}]:{port}" if ":" in self.host else f"http://{self.host}:{port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"the server for {self.url} stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, GRACEFUL_SHUTDOWN_S + 3)
        self._sock.close()


@contextlib.asynccontextmanager
async def running_shop(
    bootstrap: str,
    *,
    host: str = "127.0.0.1",
    order_port: int = 0,
    inventory_port: int = 0,
    payment_port: int = 0,
    topic_prefix: str = DEFAULT_TOPIC_PREFIX,
    release_wait_s: float = DEFAULT_RELEASE_WAIT_S,
    stock: Mapping[str, int] | None = None,
    log_level: str = "warning",
    connect_timeout_s: float = 30.0,
) -> AsyncIterator[RunningShop]:
    """Run the order, inventory and payment services on this event loop until the block ends.

    Args:
        bootstrap: The Kafka bootstrap servers, ``host:port[,host:port]``.
        host: Where the three HTTP servers listen.
        order_port: The order service's port; 0 picks a free one (as do the other two).
        inventory_port: The inventory service's port.
        payment_port: The payment service's port.
        topic_prefix: The topics are ``<prefix>.orders``, ``<prefix>.inventory`` and ``<prefix>.payments``;
            they are created if missing.
        release_wait_s: How long the order service waits, after ``PaymentFailed``, for
            ``InventoryReleased`` before it cancels the order anyway.
        stock: The inventory's starting stock by SKU (default ``DEFAULT_STOCK``).
        log_level: uvicorn's log level.
        connect_timeout_s: How long to wait for the broker at start.

    When the block is entered every consumer is positioned at the end of its topics: whatever is
    published from then on is seen.
    """
    topics = ShopTopics.with_prefix(topic_prefix)
    await ensure_topics(bootstrap, topics.all, timeout_s=connect_timeout_s)
    order = OrderService(bootstrap, topics, release_wait_s=release_wait_s)
    inventory = InventoryService(bootstrap, topics, stock=stock)
    payment = PaymentService(bootstrap, topics)
    apps = (create_order_app(order), create_inventory_app(inventory), create_payment_app(payment))
    ports = (order_port, inventory_port, payment_port)
    async with contextlib.AsyncExitStack() as stack:
        for service in (order, inventory, payment):
            await service.start()
            stack.push_async_callback(service.stop)
        servers: list[_HttpService] = []

        async def stop_servers() -> None:
            # All at once: each takes a tenth of a second or two to notice that it should stop.
            await asyncio.gather(*(s.stop() for s in servers))

        stack.push_async_callback(stop_servers)
        for app, port in zip(apps, ports, strict=True):
            servers.append(_HttpService(app, host, port, log_level=log_level))
            await servers[-1].start()
        order_url, inventory_url, payment_url = (s.url for s in servers)
        yield RunningShop(order_url, inventory_url, payment_url, topics, bootstrap)


async def serve(args: argparse.Namespace) -> None:
    """Run the shop until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_shop(
        args.bootstrap,
        host=args.host,
        order_port=args.order_port,
        inventory_port=args.inventory_port,
        payment_port=args.payment_port,
        topic_prefix=args.topic_prefix,
        release_wait_s=args.release_wait,
        log_level=args.log_level,
    ) as shop:
        log.info(shop.ready_line())
        await stop.wait()
        log.info("shop stopping")
    log.info("shop stopped")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.shop",
        description="Serve the demo shop: order, inventory and payment services choreographed over Kafka.",
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--order-port", type=int, default=8101)
    parser.add_argument("--inventory-port", type=int, default=8102)
    parser.add_argument("--payment-port", type=int, default=8103)
    parser.add_argument("--topic-prefix", default=DEFAULT_TOPIC_PREFIX)
    parser.add_argument(
        "--release-wait",
        type=float,
        default=DEFAULT_RELEASE_WAIT_S,
        help="seconds the order service waits for InventoryReleased after PaymentFailed (%(default)s)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level (default %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args))
    except (OSError, RuntimeError, KafkaError) as e:
        log.error("shop failed: %s", e)
        return 1
    except Exception as e:
        log.exception("shop failed: %s", e)
        return 1
    return 0
