"""The policy's decisions: mode defaults, what only an exact listing opens, what nothing opens."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from crucible.core.config import Settings
from crucible.core.errors import CrucibleError
from crucible.core.targets import Kind, PolicyMode, Resolver, StackEndpoint, TargetPolicy, TargetRefused
from crucible.core.targets.addresses import kinds, parse_address
from crucible.core.targets.stack import policy_from_settings, stack_endpoints

DEV = TargetPolicy.build(mode="dev")
PROD = TargetPolicy.build(mode="production")

PRIVATE = ["10.1.2.3", "172.16.5.4", "192.168.0.1", "100.64.0.1", "fd12::1", "127.0.0.1", "127.9.9.9", "::1"]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]
METADATA = [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "168.63.129.16",
    "fd00:ec2::254",
    "fd20:ce::254",
]
NEVER = [
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "224.0.0.1",
    "239.1.1.1",
    "255.255.255.255",
    "240.0.0.1",
    "ff02::1",
    "::7f00:1",
]


def resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    """A DNS that knows only ``answers``: names that exist nowhere else."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError(f"{host} unknown")
        return answers[host]

    return resolve


@pytest.mark.parametrize("address", PRIVATE + PUBLIC)
def test_dev_mode_allows_loopback_private_and_public(address: str) -> None:
    assert DEV.judge(address) is None


@pytest.mark.parametrize("address", PRIVATE)
def test_production_mode_refuses_private_and_loopback(address: str) -> None:
    reason = PROD.judge(address)
    assert reason is not None and "production mode allows public addresses only" in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_production_mode_allows_public(address: str) -> None:
    assert PROD.judge(address) is None


@pytest.mark.parametrize("address", [*METADATA, "169.254.1.1", "fe80::1"])
@pytest.mark.parametrize(
    "policy", [DEV, PROD, TargetPolicy.build(mode="dev", networks=["0.0.0.0/0", "::/0"])]
)
def test_metadata_and_link_local_are_refused_even_under_broad_lists(
    policy: TargetPolicy, address: str
) -> None:
    reason = policy.judge(address)
    assert reason is not None and ("metadata" in reason or "link-local" in reason)


def test_an_exact_listing_opens_a_metadata_address_and_a_broad_one_does_not() -> None:
    assert TargetPolicy.build(networks=["169.254.169.254/32"]).judge("169.254.169.254") is None
    assert TargetPolicy.build(hosts=["100.100.100.200"]).judge("100.100.100.200") is None
    link_local = TargetPolicy.build(networks=["169.254.0.0/16"])
    assert link_local.judge("169.254.7.7") is None
    assert "metadata" in (link_local.judge("169.254.169.254") or "")
    assert "metadata" in (TargetPolicy.build(networks=["128.0.0.0/1"]).judge("168.63.129.16") or "")


@pytest.mark.parametrize("address", NEVER)
def test_unspecified_multicast_and_reserved_are_never_targets(address: str) -> None:
    listed = TargetPolicy.build(mode="dev", networks=[f"{address}/{32 if '.' in address else 128}"])
    reason = listed.judge(address)
    assert reason is not None and "never a target" in reason


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:a9fe:a9fe", "169.254.169.254"),
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:a00:1::1", "10.0.0.1"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),
    ],
)
def test_ipv6_forms_of_a_refused_ipv4_address_are_refused(address: str, inner: str) -> None:
    assert PROD.judge(inner) is not None
    assert PROD.judge(address) is not None


def test_listing_replaces_the_defaults_only_when_asked() -> None:
    additive = TargetPolicy.build(mode="production", networks=["10.20.0.0/16"])
    assert additive.judge("10.20.1.1") is None and additive.judge("93.184.216.34") is None
    assert additive.judge("10.21.1.1") is not None
    only = TargetPolicy.build(mode="dev", networks=["10.20.0.0/16"], include_defaults=False)
    assert only.judge("10.20.1.1") is None
    assert "not in the target policy" in (only.judge("93.184.216.34") or "")
    assert only.judge("127.0.0.1") is not None


def test_a_special_purpose_address_needs_a_listing() -> None:
    assert "special-purpose" in (DEV.judge("192.0.2.1") or "")
    assert TargetPolicy.build(networks=["192.0.2.0/24"]).judge("192.0.2.1") is None


async def test_a_host_listed_by_name_is_allowed_whatever_it_resolves_to_but_never_to_metadata() -> None:
    dns = resolver({"api.internal": ["10.0.0.5"], "meta.internal": ["169.254.169.254"]})
    policy = TargetPolicy.build(hosts=["API.Internal.", "meta.internal"], include_defaults=False)
    checked = await policy.check_url("https://api.internal/v1?token=x", resolver=dns)
    assert (checked.host, checked.port, checked.addresses) == ("api.internal", 443, ("10.0.0.5",))
    with pytest.raises(TargetRefused) as refused:
        await policy.check_url("http://meta.internal/", resolver=dns)
    assert refused.value.rule == "cloud-metadata"


async def test_one_refused_address_refuses_the_name() -> None:
    dns = resolver({"mixed.test": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(TargetRefused) as refused:
        await PROD.check_url("http://mixed.test/", resolver=dns)
    assert "mixed.test resolves to 10.0.0.1" in str(refused.value)


async def test_unresolvable_names_are_refused() -> None:
    with pytest.raises(TargetRefused) as refused:
        await DEV.check_url("http://nowhere.invalid/", resolver=resolver({}))
    assert refused.value.rule == "resolution"


async def test_empty_ports_allow_any_port_and_a_list_only_its_ports() -> None:
    assert (await DEV.check_url("http://127.0.0.1:1/")).port == 1
    listed = TargetPolicy.build(mode="dev", ports=["443", 8443])
    assert (await listed.check_url("https://127.0.0.1/")).port == 443
    with pytest.raises(TargetRefused, match=r"port 80 is not an allowed port \(443, 8443\)"):
        await listed.check_url("http://127.0.0.1/")


async def test_refusals_are_crucible_errors_that_name_the_origin_only() -> None:
    with pytest.raises(CrucibleError) as refused:
        await PROD.check_url("http://10.0.0.1:8080/private?api_key=hunter2#frag")
    assert str(refused.value).startswith("target http://10.0.0.1:8080 refused: 10.0.0.1 is a private address")
    assert "hunter2" not in str(refused.value)


STACK = (StackEndpoint("127.0.0.1", 7233), StackEndpoint("0.0.0.0", 9464), StackEndpoint("db.test", 5432))


async def _stack_rule(policy: TargetPolicy, url: str) -> str | None:
    try:
        await policy.check_url(url, resolver=resolver({"db.test": ["10.0.0.7"], "localhost": ["127.0.0.1"]}))
    except TargetRefused as refused:
        return refused.rule
    return None


async def test_the_stacks_own_endpoints_are_refused() -> None:
    policy = TargetPolicy.build(mode="dev", stack=STACK)
    assert await _stack_rule(policy, "http://127.0.0.1:7233/") == "stack"
    assert await _stack_rule(policy, "http://localhost:7233/") == "stack"
    assert await _stack_rule(policy, "http://[::ffff:127.0.0.1]:7233/") == "stack"
    assert await _stack_rule(policy, "http://127.0.0.1:7234/") is None
    # 0.0.0.0 binds every address of this machine: its loopback and its own addresses, not others'.
    assert await _stack_rule(policy, "http://127.0.0.5:9464/") == "stack"
    assert await _stack_rule(policy, "http://10.9.9.9:9464/") is None
    assert await _stack_rule(policy, "http://10.0.0.7:5432/") == "stack"
    assert await _stack_rule(policy, "http://db.test:5432/") == "stack"


async def test_a_stack_endpoint_opens_only_to_its_exact_address_and_port() -> None:
    exact = TargetPolicy.build(mode="dev", hosts=["127.0.0.1"], ports=[7233], stack=STACK)
    assert await _stack_rule(exact, "http://127.0.0.1:7233/") is None
    broad = TargetPolicy.build(mode="dev", networks=["127.0.0.0/8"], ports=[7233], stack=STACK)
    assert await _stack_rule(broad, "http://127.0.0.1:7233/") == "stack"
    unlisted_port = TargetPolicy.build(mode="dev", hosts=["127.0.0.1"], stack=STACK)
    assert await _stack_rule(unlisted_port, "http://127.0.0.1:7233/") == "stack"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"networks": ["10.0.0.1/8"]}, "host bits set"),
        ({"networks": ["10.0.0.0/33"]}, "not a network"),
        ({"hosts": ["bad host"]}, "not a host name"),
        ({"ports": ["0"]}, "not a port"),
        ({"ports": ["http"]}, "not a port"),
        ({"mode": "staging"}, "staging"),
    ],
)
def test_build_names_the_wrong_entry(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TargetPolicy.build(**kwargs)  # type: ignore[arg-type]


def test_unicode_host_names_are_listed_as_httpx_sends_them() -> None:
    assert TargetPolicy.build(hosts=["Bücher.DE."]).hosts == {"xn--bcher-kva.de"}


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", Kind.PUBLIC),
        ("10.0.0.1", Kind.PRIVATE),
        ("127.0.0.1", Kind.LOOPBACK),
        ("169.254.169.254", Kind.METADATA),
        ("fe80::1%eth0", Kind.LINK_LOCAL),
        ("2001:db8::1", Kind.SPECIAL),
        ("4000::1", Kind.RESERVED),
    ],
)
def test_address_kinds(address: str, kind: Kind) -> None:
    parsed = parse_address(address)
    assert parsed is not None and kinds(parsed)[0] == kind


def test_the_installation_policy_comes_from_the_settings() -> None:
    settings = Settings(
        target_mode="dev",
        target_networks="10.20.0.0/16",
        target_ports="443,8443",
        target_defaults=False,
        database_url="postgresql+psycopg://u:p@db.internal:6543/crucible",
        kafka_bootstrap_servers="k1:9092,[fd00::9]:9093",
    )
    policy = policy_from_settings(settings)
    assert policy.mode is PolicyMode.DEV and not policy.include_defaults
    assert policy.ports == {443, 8443}
    endpoints = set(stack_endpoints(settings))
    assert {
        StackEndpoint("127.0.0.1", 8000),
        StackEndpoint("127.0.0.1", 7233),
        StackEndpoint("db.internal", 6543),
        StackEndpoint("k1", 9092),
        StackEndpoint("fd00::9", 9093),
    } <= endpoints
    assert policy_from_settings(Settings()).mode is PolicyMode.PRODUCTION
    assert policy_from_settings(Settings(dev_mode=True)).mode is PolicyMode.DEV
    assert (
        policy_from_settings(Settings(dev_mode=True, target_mode="production")).mode is PolicyMode.PRODUCTION
    )
