"""What ``crucible dev --demo`` adds: the demo target API and the demo shop.

Both ship with Crucible's source checkout under ``examples/``: the target is a small shop
API with an OpenAPI spec and a known defect, for a first QA run; the shop is three services
choreographed over Kafka (order, inventory, payment), for sagas and saga tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from crucible.core.config import Settings
from crucible.stack.process import ProcessSpec
from crucible.stack.services import StackError, wait_until

#: The examples ship with the source checkout, next to the package.
EXAMPLES_ROOT = Path(__file__).resolve().parents[2]


def check_examples() -> None:
    for example in ("demo_target", "shop"):
        if not (EXAMPLES_ROOT / "examples" / example).is_dir():
            raise StackError(
                "the demo ships with Crucible's source checkout; run `crucible dev --demo` there"
            )


def demo_ports(s: Settings) -> list[tuple[int, str, str]]:
    """(port, what, setting) of every demo part, to check they are free."""
    return [
        (s.demo_port, "the demo target", "CRUCIBLE_DEMO_PORT"),
        (s.demo_proxy_port, "the chaos proxy in front of the demo target", "CRUCIBLE_DEMO_PROXY_PORT"),
        (s.shop_order_port, "the demo shop's order service", "CRUCIBLE_SHOP_ORDER_PORT"),
        (s.shop_inventory_port, "the demo shop's inventory service", "CRUCIBLE_SHOP_INVENTORY_PORT"),
        (s.shop_payment_port, "the demo shop's payment service", "CRUCIBLE_SHOP_PAYMENT_PORT"),
    ]


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def demo_specs(s: Settings, env: dict[str, str], logs: Path, *, echo: bool) -> list[ProcessSpec]:
    """The demo target and the shop as processes, run from the examples folder."""
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES_ROOT), env.get("PYTHONPATH")]))}
    target = [
        sys.executable,
        "-m",
        "examples.demo_target",
        "--host",
        "127.0.0.1",
        "--port",
        str(s.demo_port),
        "--no-access-log",  # chaos experiments' steady probes would fill the log
    ]
    shop = [
        sys.executable,
        "-m",
        "examples.shop",
        "--bootstrap",
        s.effective_kafka_bootstrap_servers,
        "--host",
        "127.0.0.1",
        "--order-port",
        str(s.shop_order_port),
        "--inventory-port",
        str(s.shop_inventory_port),
        "--payment-port",
        str(s.shop_payment_port),
    ]
    return [
        ProcessSpec(name="demo", argv=target, env=env, log_path=logs / "demo.log", echo=echo),
        ProcessSpec(name="shop", argv=shop, env=env, log_path=logs / "shop.log", echo=echo),
    ]


async def wait_demo_ready(s: Settings) -> None:
    ports = [s.demo_port, s.shop_order_port, s.shop_inventory_port, s.shop_payment_port]

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            for port in ports:
                (await client.get(f"{_url(port)}/health")).raise_for_status()

    await wait_until("the demo target and shop", probe, timeout=60, interval=0.3)


def demo_banner(s: Settings) -> list[str]:
    target = _url(s.demo_port)
    return [
        f"  Demo target    {target}  (spec {target}/openapi.json)",
        f"                 try: crucible qa run --spec {target}/openapi.json --base-url {target}",
        f"  Demo shop      order {_url(s.shop_order_port)}  inventory {_url(s.shop_inventory_port)}"
        f"  payment {_url(s.shop_payment_port)}",
        "                 (events on shop.orders, shop.inventory, shop.payments; see examples/shop)",
        f"  Chaos demo     proxy `demo` {_url(s.demo_proxy_port)} -> the demo target",
        "                 try: crucible chaos create --file examples/chaos/latency.json",
    ]
