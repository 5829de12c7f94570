"""Under a policy that allows only the test target's host and port, hostile URLs are refused
before any request is sent: the canaries they point at receive no connection at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from crucible.core.targets import TargetPolicy, TargetRefused, guarded_client
from tests.core.targets.servers import TARGET_HOST, Servers

P = "{port}"  # the allowed port: canaries listen on it at 127.0.0.1 and ::1
Q = "{other}"  # another port on the allowed address, where a canary listens too

#: (URL, the rule that must refuse it). Every loopback spelling names the canary's own port.
HOSTILE: list[tuple[str, str]] = [
    (f"http://127.0.0.1:{P}/", "not-allowed"),
    (f"http://2130706433:{P}/", "not-allowed"),  # decimal
    (f"http://0x7f000001:{P}/", "not-allowed"),  # hex
    (f"http://0x7f.0.0.1:{P}/", "not-allowed"),  # dotted hex
    (f"http://0x7f.1:{P}/", "not-allowed"),
    (f"http://0177.0.0.1:{P}/", "url"),  # dotted octal: httpx refuses to build the request at all
    (f"http://0177.1:{P}/", "not-allowed"),  # short octal: libc reads it as 127.0.0.1
    (f"http://127.1:{P}/", "not-allowed"),
    (f"http://127.0.1:{P}/", "not-allowed"),
    (f"http://localhost:{P}/", "not-allowed"),  # a name resolving to a denied address
    (f"http://LOCALHOST:{P}/", "not-allowed"),  # upper case
    # A trailing dot: some resolvers answer 127.0.0.1, glibc with only /etc/hosts answers nothing.
    (f"http://localhost.:{P}/", "not-allowed|resolution"),
    (f"http://[::1]:{P}/", "not-allowed"),
    (f"http://[::ffff:127.0.0.1]:{P}/", "not-allowed"),
    (f"http://[::ffff:7f00:1]:{P}/", "not-allowed"),
    (f"http://[0:0:0:0:0:ffff:7f00:1]:{P}/", "not-allowed"),
    (f"http://[::127.0.0.1]:{P}/", "address"),  # IPv4-compatible: deprecated, never a target
    (f"http://[64:ff9b::127.0.0.1]:{P}/", "not-allowed"),  # NAT64
    (f"http://[2002:7f00:1::]:{P}/", "not-allowed"),  # 6to4
    (f"http://0.0.0.0:{P}/", "address"),  # reaches this machine on Linux
    (f"http://0:{P}/", "address"),
    (f"http://[::]:{P}/", "address"),
    (f"http://169.254.169.254:{P}/latest/meta-data/", "cloud-metadata"),
    ("http://169.254.169.254/latest/meta-data/", "port"),
    (f"http://2852039166:{P}/", "cloud-metadata"),  # 169.254.169.254 in decimal
    (f"http://[::ffff:169.254.169.254]:{P}/", "cloud-metadata"),
    (f"http://[fd00:ec2::254]:{P}/", "cloud-metadata"),
    (f"http://100.100.100.200:{P}/", "cloud-metadata"),
    (f"http://169.254.1.1:{P}/", "link-local"),
    (f"http://[fe80::1%25lo]:{P}/", "link-local"),
    (f"http://10.0.0.1:{P}/", "not-allowed"),
    (f"http://172.16.0.1:{P}/", "not-allowed"),
    (f"http://192.168.1.1:{P}/", "not-allowed"),
    (f"http://224.0.0.1:{P}/", "address"),
    (f"http://255.255.255.255:{P}/", "address"),
    (f"http://240.0.0.1:{P}/", "address"),
    (f"http://127.0.0.%31:{P}/", "host"),  # percent-encoding in the host
    (f"https://127.0.0.1:{P}/", "not-allowed"),
    ("file:///etc/passwd", "scheme"),
    (f"gopher://{TARGET_HOST}:{P}/_", "scheme"),
    (f"ftp://{TARGET_HOST}:{P}/", "scheme"),
    (f"http://user:secret@{TARGET_HOST}:{P}/", "credentials"),
    (f"http://{TARGET_HOST}:{P}@127.0.0.1:{P}/", "credentials"),
    (f"http://127.0.0.1:{P}#@{TARGET_HOST}:{P}/", "not-allowed"),  # the fragment hides nothing
    (f"http://[::1%25lo]:{P}/", "not-allowed"),  # an IPv6 zone id
    (f"http://[::ffff:7f00:1%25lo]:{P}/", "not-allowed"),
    (f"http://[::ffff:0:7f00:1]:{P}/", "address"),  # IPv4-translated (SIIT): reserved
    (f"http://017700000001:{P}/", "not-allowed"),  # one octal number
    (f"http://0x7F.0X0.0.01:{P}/", "not-allowed"),  # mixed hex, octal and case
    (f"HTTP://127.0.0.1:0{P}/", "not-allowed"),  # scheme case, a leading zero in the port
    (f"http://\\\\127.0.0.1:{P}/", "resolution"),
    (f"http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:{P}/", "url"),  # circled 'localhost'
    (f"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{P}/", "url"),  # full-width 127.0.0.1
    (f"http://{TARGET_HOST}:0/", "port"),
    (f"http://{TARGET_HOST}:{Q}/", "port"),  # other ports on loopback
    (f"http://127.0.0.1:{Q}/", "port"),
    (f"http://localhost:{Q}/", "port"),
]

#: Where the allowed target redirects: each hop must be refused before it is sent.
HOSTILE_REDIRECTS: list[tuple[str, str]] = [
    (f"http://127.0.0.1:{P}/", "not-allowed"),
    (f"http://localhost:{P}/", "not-allowed"),
    (f"http://2130706433:{P}/", "not-allowed"),
    (f"http://[::ffff:7f00:1]:{P}/", "not-allowed"),
    (f"http://169.254.169.254:{P}/latest/meta-data/", "cloud-metadata"),
    (f"http://{TARGET_HOST}:{Q}/", "port"),
    ("file:///etc/passwd", "scheme"),
]


@pytest.fixture(scope="module")
def policy(servers: Servers) -> TargetPolicy:
    # Only the target's address and port: no mode defaults.
    return TargetPolicy.build(hosts=[TARGET_HOST], ports=[servers.port], include_defaults=False)


@pytest.fixture(scope="module")
async def client(policy: TargetPolicy) -> AsyncIterator[httpx.AsyncClient]:
    async with guarded_client(policy, follow_redirects=True) as guarded:
        yield guarded


def _fill(url: str, servers: Servers) -> str:
    return url.format(port=servers.port, other=servers.other_port)


def test_the_corpus_is_big_enough() -> None:
    assert len(HOSTILE) + len(HOSTILE_REDIRECTS) >= 30
    assert len({url for url, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("url", "rule"), HOSTILE, ids=[url for url, _ in HOSTILE])
async def test_hostile_url_is_refused_before_any_request(
    policy: TargetPolicy, client: httpx.AsyncClient, servers: Servers, url: str, rule: str
) -> None:
    before = (servers.canary.connections, servers.target.connections, len(servers.target.requests))
    with pytest.raises(TargetRefused) as refused:
        await policy.check_url(_fill(url, servers))
    assert refused.value.rule in rule.split("|"), str(refused.value)
    assert "secret" not in str(refused.value)
    # httpx itself refuses to build a request for a URL it cannot parse.
    with pytest.raises(httpx.InvalidURL if rule == "url" else TargetRefused):
        await client.get(_fill(url, servers))
    after = (servers.canary.connections, servers.target.connections, len(servers.target.requests))
    assert after == before


@pytest.mark.parametrize(("location", "rule"), HOSTILE_REDIRECTS, ids=[url for url, _ in HOSTILE_REDIRECTS])
async def test_redirect_to_a_hostile_url_is_refused_at_the_hop(
    client: httpx.AsyncClient, servers: Servers, location: str, rule: str
) -> None:
    canary = servers.canary.connections
    requests = len(servers.target.requests)
    url = f"{servers.target_url}/redirect?to={quote(_fill(location, servers), safe='')}"
    with pytest.raises(TargetRefused) as refused:
        await client.get(url)
    assert refused.value.rule == rule, str(refused.value)
    # The allowed first request was sent; the hop was not.
    sent = servers.target.requests[requests:]
    assert len(sent) == 1 and sent[0][0].startswith("GET /redirect?to="), sent
    assert servers.canary.connections == canary


async def test_the_allowed_target_still_works(client: httpx.AsyncClient, servers: Servers) -> None:
    response = await client.get(f"{servers.target_url}/hello?x=1")
    assert (response.status_code, response.text) == (200, "target ok")
    assert str(response.request.url) == f"{servers.target_url}/hello?x=1"
    posted = await client.post(f"{servers.target_url}/echo", content=b"payload")
    assert posted.text == "payload"


async def test_a_redirect_within_the_allowed_target_is_followed(
    client: httpx.AsyncClient, servers: Servers
) -> None:
    requests = len(servers.target.requests)
    response = await client.get(f"{servers.target_url}/hop")
    assert (response.status_code, response.text) == (200, "target ok")
    assert [line for line, _ in servers.target.requests[requests:]] == ["GET /hop HTTP/1.1", "GET / HTTP/1.1"]
    assert [r.status_code for r in response.history] == [302]


async def test_the_canaries_are_reachable_without_the_policy(servers: Servers) -> None:
    """The canaries really listen where the hostile URLs point, so their silence above means something."""
    async with httpx.AsyncClient(trust_env=False) as plain:
        for url in (
            f"http://127.0.0.1:{servers.port}/",
            f"http://[::1]:{servers.port}/",
            f"http://0x7f.1:{servers.port}/",
        ):
            connections = servers.canary.connections
            assert (await plain.get(url)).text == "canary reached"
            assert servers.canary.connections == connections + 1
