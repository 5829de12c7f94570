"""The chaos proxy activities against an in-process control API and a real echo server."""

from __future__ import annotations

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.chaos_proxy import (
    PROXY_FAULT_INVALID,
    PROXY_NOT_FOUND,
    PROXY_UNAVAILABLE,
    ChaosProxyActivities,
    InjectProxyFaultInput,
    ProxyFaultResult,
    RollBackProxyFaultInput,
)
from crucible.core.http import target_client
from crucible.core.targets import TARGET_REFUSED, TargetPolicy
from tests.chaos_proxy.support import CONTROL_URL, control, echo_port, round_trip

pytestmark = pytest.mark.timeout(15)
__all__ = ["control", "echo_port"]  # fixtures, re-used from the control API's tests

LATENCY = {"type": "latency", "ms": 200}


@pytest.fixture
async def listen(control: httpx.AsyncClient, echo_port: int) -> str:
    created = await control.post("/proxies", json={"name": "echo", "upstream": f"127.0.0.1:{echo_port}"})
    address: str = created.json()["listen"]
    return address


async def test_inject_then_roll_back_twice_each(control: httpx.AsyncClient, listen: str) -> None:
    activities = ChaosProxyActivities(control)
    env = ActivityEnvironment()
    inject = InjectProxyFaultInput(CONTROL_URL, "echo", "slow", LATENCY)
    for _ in range(2):  # a retried activity is harmless
        assert await env.run(activities.inject_proxy_fault, inject) == ProxyFaultResult("echo", "slow", True)
    _, slow = await round_trip(listen)
    assert slow >= 0.19

    roll_back = RollBackProxyFaultInput(CONTROL_URL, "echo", "slow")
    for _ in range(2):
        assert await env.run(activities.roll_back_proxy_fault, roll_back) == ProxyFaultResult(
            "echo", "slow", False
        )
    _, clean = await round_trip(listen)
    assert clean < 0.15
    assert (await control.get("/proxies/echo")).json()["faults"] == {}


async def test_rolling_back_without_a_name_clears_every_fault(
    control: httpx.AsyncClient, listen: str
) -> None:
    activities = ChaosProxyActivities(control)
    env = ActivityEnvironment()
    for name in ("a", "b"):
        await env.run(
            activities.inject_proxy_fault, InjectProxyFaultInput(CONTROL_URL, "echo", name, LATENCY)
        )
    await env.run(activities.roll_back_proxy_fault, RollBackProxyFaultInput(CONTROL_URL, "echo"))
    assert (await control.get("/proxies/echo")).json()["faults"] == {}
    # The proxy is gone: nothing is left to roll back, so that is a success too.
    await control.delete("/proxies/echo")
    await env.run(activities.roll_back_proxy_fault, RollBackProxyFaultInput(CONTROL_URL, "echo", "a"))


async def test_business_failures_are_not_retried(control: httpx.AsyncClient, listen: str) -> None:
    activities = ChaosProxyActivities(control)
    env = ActivityEnvironment()
    bad = InjectProxyFaultInput(CONTROL_URL, "echo", "bad", {"type": "latency", "ms": -5})
    with pytest.raises(ApplicationError) as invalid:
        await env.run(activities.inject_proxy_fault, bad)
    assert invalid.value.type == PROXY_FAULT_INVALID and invalid.value.non_retryable
    assert "ms" in str(invalid.value.details)

    missing = InjectProxyFaultInput(CONTROL_URL, "nope", "slow", LATENCY)
    with pytest.raises(ApplicationError) as not_found:
        await env.run(activities.inject_proxy_fault, missing)
    assert not_found.value.type == PROXY_NOT_FOUND and not_found.value.non_retryable


async def test_an_unreachable_proxy_is_retried() -> None:
    async with httpx.AsyncClient() as client:
        activities = ChaosProxyActivities(client)
        request = RollBackProxyFaultInput("http://127.0.0.1:1", "echo", "slow")
        with pytest.raises(ApplicationError) as unavailable:
            await ActivityEnvironment().run(activities.roll_back_proxy_fault, request)
    assert unavailable.value.type == PROXY_UNAVAILABLE and not unavailable.value.non_retryable


async def test_the_configured_proxy_is_called_directly_and_any_other_through_the_policy(
    control: httpx.AsyncClient, listen: str
) -> None:
    async with target_client(policy=TargetPolicy.build(mode="production")) as guarded:
        activities = ChaosProxyActivities(control, targets=guarded, configured_url=CONTROL_URL)
        env = ActivityEnvironment()
        inject = InjectProxyFaultInput(CONTROL_URL, "echo", "slow", LATENCY)
        assert await env.run(activities.inject_proxy_fault, inject) == ProxyFaultResult("echo", "slow", True)
        elsewhere = InjectProxyFaultInput("http://127.0.0.1:9", "echo", "slow", LATENCY)
        with pytest.raises(ApplicationError) as refused:
            await env.run(activities.inject_proxy_fault, elsewhere)
    assert refused.value.type == TARGET_REFUSED and refused.value.non_retryable
    assert "target refused by policy: http://127.0.0.1:9" in refused.value.message
    await env.run(activities.roll_back_proxy_fault, RollBackProxyFaultInput(CONTROL_URL, "echo", "slow"))
