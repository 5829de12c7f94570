"""The guarded client sends each request to the address that was checked, never one resolved later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from crucible.core.config import Settings
from crucible.core.targets import CachingResolver, TargetPolicy, TargetRefused, guarded_client, using_policy
from crucible.core.targets.stack import client_from_settings
from tests.core.targets.servers import TARGET_HOST, Servers


class Dns:
    """A resolver that answers from a script, one answer per lookup, and counts lookups."""

    def __init__(self, script: dict[str, list[Sequence[str]]]) -> None:
        self.script = script
        self.lookups = 0

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups += 1
        answers = self.script[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


async def test_the_request_goes_to_the_checked_address_with_its_own_host_header(servers: Servers) -> None:
    # `rebind.test` exists only in this resolver: the system cannot resolve it, so the request
    # can only have reached the target through the address the check returned.
    dns = Dns({"rebind.test": [[TARGET_HOST]]})
    policy = TargetPolicy.build(hosts=["rebind.test"], ports=[servers.port], include_defaults=False)
    async with guarded_client(policy, resolver=dns) as client:
        response = await client.get(f"http://rebind.test:{servers.port}/pinned")
    assert response.text == "target ok"
    assert str(response.request.url) == f"http://rebind.test:{servers.port}/pinned"
    assert servers.target.requests[-1] == ("GET /pinned HTTP/1.1", f"rebind.test:{servers.port}")


async def test_a_rebinding_answer_is_judged_before_it_is_used(servers: Servers) -> None:
    dns = Dns({"rebind.test": [[TARGET_HOST], ["127.0.0.1"]]})
    policy = TargetPolicy.build(hosts=[TARGET_HOST], ports=[servers.port], include_defaults=False)
    canary = servers.canary.connections
    async with guarded_client(policy, resolver=CachingResolver(dns, ttl_s=0)) as client:
        assert (await client.get(f"http://rebind.test:{servers.port}/")).status_code == 200
        with pytest.raises(TargetRefused, match=r"resolves to 127\.0\.0\.1"):
            await client.get(f"http://rebind.test:{servers.port}/")
    assert servers.canary.connections == canary


async def test_resolutions_are_cached_and_still_judged_per_policy(servers: Servers) -> None:
    dns = Dns({"cached.test": [["127.0.0.1"]]})
    cached = CachingResolver(dns, ttl_s=60)
    dev = TargetPolicy.build(mode="dev")
    strict = TargetPolicy.build(hosts=[TARGET_HOST], include_defaults=False)
    async with guarded_client(resolver=cached) as client:
        with using_policy(dev):
            assert (await client.get(f"http://cached.test:{servers.port}/")).text == "canary reached"
        with using_policy(strict), pytest.raises(TargetRefused):
            await client.get(f"http://cached.test:{servers.port}/")
    assert dns.lookups == 1


async def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(servers: Servers) -> None:
    # Nothing listens on 127.0.0.3 at this port.
    dns = Dns({"two.test": [["127.0.0.3", TARGET_HOST]]})
    policy = TargetPolicy.build(networks=["127.0.0.0/30"], ports=[servers.port], include_defaults=False)
    async with guarded_client(policy, resolver=dns) as client:
        response = await client.post(f"http://two.test:{servers.port}/echo", content=b"sent once")
    assert response.text == "sent once"


async def test_without_a_policy_every_request_is_refused(servers: Servers) -> None:
    async with guarded_client() as client:
        with pytest.raises(TargetRefused) as refused:
            await client.get(servers.target_url)
    assert refused.value.rule == "policy"


async def test_the_policy_in_force_follows_the_task(servers: Servers) -> None:
    allowed = TargetPolicy.build(hosts=[TARGET_HOST], include_defaults=False)
    refused = TargetPolicy.build(mode="production")

    async def call(policy: TargetPolicy) -> int | str:
        with using_policy(policy):
            try:
                return (await client.get(servers.target_url)).status_code
            except TargetRefused as error:
                return error.rule

    async with guarded_client(refused) as client:
        assert await asyncio.gather(call(allowed), call(refused)) == [200, "not-allowed"]
        with pytest.raises(TargetRefused):
            await client.get(servers.target_url)


async def test_a_streamed_body_is_sent(servers: Servers) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"chunk-1 "
        yield b"chunk-2"

    policy = TargetPolicy.build(hosts=[TARGET_HOST], include_defaults=False)
    async with guarded_client(policy) as client:
        response = await client.post(f"{servers.target_url}/echo", content=body())
    assert isinstance(response, httpx.Response) and response.status_code == 200


async def test_ipv6_addresses_are_pinned_too(servers: Servers) -> None:
    dns = Dns({"six.test": [["::1"]]})
    async with guarded_client(TargetPolicy.build(mode="dev"), resolver=dns) as client:
        assert (await client.get(f"http://[::1]:{servers.port}/")).text == "canary reached"
        assert (await client.get(f"http://six.test:{servers.port}/")).text == "canary reached"
    assert servers.canary.requests[-1] == ("GET / HTTP/1.1", f"six.test:{servers.port}")


async def test_the_settings_client_judges_by_the_installation_policy(servers: Servers) -> None:
    settings = Settings(target_mode="production", target_hosts=TARGET_HOST, target_defaults=False)
    async with client_from_settings(settings) as client:
        assert (await client.get(servers.target_url)).text == "target ok"
        with pytest.raises(TargetRefused, match="not in the target policy"):
            await client.get(f"http://127.0.0.1:{servers.port}/")
