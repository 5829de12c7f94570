"""Which targets a run may call: hosts, networks and ports, judged after DNS resolution.

A target is a user-supplied URL, so an unchecked worker would call whatever a run names:
the cloud metadata service, Crucible's own PostgreSQL, a neighbour's admin port. A
:class:`TargetPolicy` decides, and :meth:`TargetPolicy.check_url` applies it to one URL:

1. the URL parses the way httpx parses it, its scheme is ``http`` or ``https``, it carries no
   credentials, and its host has no percent-encoding;
2. its port is allowed (an empty port list allows any port);
3. its host is resolved the way the client would resolve it, through ``getaddrinfo``, so
   ``2130706433``, ``0x7f.1``, ``0177.1`` and ``127.1`` all become 127.0.0.1, and EVERY address
   it resolves to is judged; one refused address refuses the target;
4. an address is refused when it is unspecified, multicast or reserved (always); link-local or
   a cloud metadata service, unless a listed network inside that range names it; one of the
   stack's own endpoints, unless both its port and its address or host name are listed; and
   otherwise when neither the host's name, a listed network, nor the mode's default kinds allow it.

IPv4-mapped IPv6 addresses are judged as the IPv4 address they are; NAT64, 6to4 and Teredo
addresses must pass both as themselves and as the IPv4 address they deliver to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import unquote

import httpx

from crucible.core.errors import CrucibleError
from crucible.core.targets.addresses import (
    LINK_LOCAL_NETWORKS,
    LOOPBACK_NETWORKS,
    METADATA_NETWORKS,
    IPAddress,
    IPNetwork,
    Kind,
    embedded_ipv4,
    kinds,
    parse_address,
    plain,
)

#: Resolves a host name to IP address strings, as the HTTP client would (see :func:`system_resolver`).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

SCHEMES = frozenset({"http", "https"})
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
DEFAULT_PORTS = {"http": 80, "https": 443}


class PolicyMode(StrEnum):
    #: Loopback, private and public addresses: the demo targets live on this machine.
    DEV = "dev"
    #: Public addresses only; an organisation lists the private ranges it tests.
    PRODUCTION = "production"


#: What each mode allows when ``include_defaults`` is on, before anything is listed.
DEFAULT_KINDS: dict[PolicyMode, frozenset[Kind]] = {
    PolicyMode.DEV: frozenset({Kind.PUBLIC, Kind.PRIVATE, Kind.LOOPBACK}),
    PolicyMode.PRODUCTION: frozenset({Kind.PUBLIC}),
}
#: Kinds no policy can allow: connecting to 0.0.0.0 reaches this machine, the others no single host.
NEVER_KINDS = frozenset({Kind.UNSPECIFIED, Kind.MULTICAST, Kind.RESERVED})
#: Kinds a policy allows only through a listed network that lies inside the kind's range, so that
#: listing 0.0.0.0/0 or 169.254.0.0/16 does not open the metadata service by accident.
GUARDED_KINDS: dict[Kind, tuple[IPNetwork, ...]] = {
    Kind.METADATA: METADATA_NETWORKS,
    Kind.LINK_LOCAL: LINK_LOCAL_NETWORKS,
}


#: The ``ApplicationError`` type of an activity that the target policy stopped.
TARGET_REFUSED = "TargetRefused"


class TargetRefused(CrucibleError):
    """A target the policy does not allow; ``rule`` names the rule that refused it.

    The message names the target by its origin only (``scheme://host:port``), never its
    path, query or credentials, which may hold secrets.
    """

    def __init__(self, target: str, reason: str, *, rule: str) -> None:
        super().__init__(f"target {target} refused: {reason}")
        self.target = target
        self.reason = reason
        self.rule = rule

    @property
    def summary(self) -> str:
        """For a run's events and results: ``target refused by policy: <origin>: <why> (rule: <rule>)``."""
        return f"target refused by policy: {self.target}: {self.reason} (rule: {self.rule})"


def refusal_in(exc: BaseException) -> TargetRefused | None:
    """The :class:`TargetRefused` that ``exc`` is, or holds in an exception group (a task group's)."""
    if isinstance(exc, TargetRefused):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := refusal_in(inner)) is not None:
                return found
    return None


@dataclass(frozen=True)
class StackEndpoint:
    """One of the stack's own services: ``host`` is an address, a name, or 0.0.0.0 / :: (every
    address of this machine)."""

    host: str
    port: int


@dataclass(frozen=True)
class CheckedTarget:
    """A target the policy allows, and the addresses it was allowed at: connect to those only."""

    scheme: str
    #: As the URL names it (IDNA-encoded), for the Host header and TLS server name.
    host: str
    port: int
    #: Every address the host resolved to, in resolution order, IPv6 zones kept.
    addresses: tuple[str, ...]
    #: True when ``host`` is an IP address itself rather than a name.
    literal: bool = False

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{_bracket(self.host)}:{self.port}"


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, through the event loop's ``getaddrinfo`` (libc's rules)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def normalise_host(name: str) -> str:
    """A host name as policies compare it: IDNA-encoded like httpx sends it, lower case, no trailing dot."""
    raw = httpx.URL(f"http://{_bracket(name.strip())}/").raw_host.decode("ascii")
    return raw.lower().rstrip(".")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _is_local(address: IPAddress) -> bool:
    """Whether ``address`` belongs to this machine: only a local address can be bound."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class TargetPolicy:
    """Which hosts, networks and ports runs may call. Build one with :meth:`build`.

    A policy is immutable: an organisation that changes its lists gets a new policy.
    """

    mode: PolicyMode = PolicyMode.PRODUCTION
    #: Host names allowed whatever they resolve to (but never to the kinds a name cannot open).
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    #: Allowed ports; empty allows any port (the stack's own endpoints stay refused).
    ports: frozenset[int] = frozenset()
    #: Whether the mode's default kinds are allowed as well as what is listed.
    include_defaults: bool = True
    #: The stack's own services, refused unless listed explicitly.
    stack: tuple[StackEndpoint, ...] = ()
    _single: frozenset[IPAddress] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = frozenset(net.network_address for net in self.networks if net.num_addresses == 1)
        object.__setattr__(self, "_single", exact)

    @classmethod
    def build(
        cls,
        *,
        mode: PolicyMode | str = PolicyMode.PRODUCTION,
        hosts: Iterable[str] = (),
        networks: Iterable[str] = (),
        ports: Iterable[int | str] = (),
        include_defaults: bool = True,
        stack: Iterable[StackEndpoint | tuple[str, int]] = (),
    ) -> TargetPolicy:
        """A policy from plain lists, as settings and organisations store them.

        ``hosts`` may hold IP addresses, which become single-address networks. Raises
        ``ValueError`` naming the first entry that is not a host, network (``10.0.0.0/8``,
        ``fd00::/8``; host bits must be zero) or port.
        """
        names: set[str] = set()
        nets: list[IPNetwork] = []
        for host in (h.strip() for h in hosts):
            if not host:
                continue
            literal = parse_address(host)
            if literal is not None:
                nets.append(ipaddress.ip_network(plain(literal)))
                continue
            try:
                name = normalise_host(host)
            except (httpx.InvalidURL, UnicodeError) as exc:
                raise ValueError(f"{host!r} is not a host name: {exc}") from None
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{host!r} is not a host name")
            names.add(name)
        for text in (n.strip() for n in networks):
            if text:
                try:
                    nets.append(ipaddress.ip_network(text))
                except ValueError as exc:
                    raise ValueError(f"{text!r} is not a network: {exc}") from None
        port_set: set[int] = set()
        for port in ports:
            if str(port).strip():
                number = int(str(port).strip()) if str(port).strip().isdigit() else 0
                if not 1 <= number <= 65535:
                    raise ValueError(f"{port!r} is not a port (1-65535)")
                port_set.add(number)
        endpoints = tuple(e if isinstance(e, StackEndpoint) else StackEndpoint(*e) for e in stack)
        return cls(
            mode=PolicyMode(mode),
            hosts=frozenset(names),
            networks=tuple(nets),
            ports=frozenset(port_set),
            include_defaults=include_defaults,
            stack=endpoints,
        )

    async def check_url(self, url: str | httpx.URL, *, resolver: Resolver = system_resolver) -> CheckedTarget:
        """Check ``url`` before anything is sent to it; raises :class:`TargetRefused`.

        Returns the addresses the host resolved to, all allowed: a client must connect to
        those (see :class:`~crucible.core.targets.transport.GuardedTransport`), not resolve again.
        """
        parsed, origin = _parse(url)
        scheme = parsed.scheme
        raw_host = parsed.raw_host.decode("ascii")
        port = parsed.port if parsed.port is not None else DEFAULT_PORTS.get(scheme, 0)
        if scheme not in SCHEMES:
            raise TargetRefused(origin, f"scheme {scheme!r} is not http or https", rule="scheme")
        if parsed.userinfo:
            raise TargetRefused(origin, "URLs with credentials are refused; use headers", rule="credentials")
        if not raw_host:
            raise TargetRefused(origin, "the URL names no host", rule="url")
        if not 1 <= port <= 65535:
            raise TargetRefused(origin, f"port {port} is not a port", rule="port")
        if self.ports and port not in self.ports:
            allowed = ", ".join(map(str, sorted(self.ports)))
            raise TargetRefused(origin, f"port {port} is not an allowed port ({allowed})", rule="port")
        literal = parse_address(unquote(raw_host)) if ":" in raw_host else parse_address(raw_host)
        if literal is None and "%" in raw_host:
            raise TargetRefused(origin, "percent-encoded host names are refused", rule="host")
        if literal is not None:
            addresses: Sequence[str] = [str(literal)]
        else:
            try:
                addresses = await resolver(raw_host, port)
            except (OSError, UnicodeError) as exc:
                raise TargetRefused(
                    origin, f"{raw_host} could not be resolved: {exc}", rule="resolution"
                ) from None
            if not addresses:
                raise TargetRefused(origin, f"{raw_host} resolved to no address", rule="resolution")
        name = None if literal is not None else raw_host.lower().rstrip(".")
        for text in addresses:
            address = parse_address(text)
            if address is None:
                raise TargetRefused(
                    origin, f"{raw_host} resolved to {text!r}, not an address", rule="resolution"
                )
            refusal = self._judge(plain(address), by_name=name is not None and name in self.hosts)
            if refusal is None:
                refusal = await self._stack_refusal(plain(address), port, name, resolver)
            if refusal is not None:
                rule, reason = refusal
                via = "" if literal is not None else f"{raw_host} resolves to {text}: "
                if plain(address) != address and "%" not in text:
                    via += f"{text} is {plain(address)}: "
                raise TargetRefused(origin, via + reason, rule=rule)
        return CheckedTarget(scheme, raw_host, port, tuple(addresses), literal is not None)

    def judge(self, address: str | IPAddress, *, host: str | None = None) -> str | None:
        """Why ``address`` is refused (ports and stack endpoints aside), or None; for tests and messages."""
        parsed = address if not isinstance(address, str) else parse_address(address)
        if parsed is None:
            return f"{address!r} is not an IP address"
        by_name = host is not None and normalise_host(host) in self.hosts
        refusal = self._judge(plain(parsed), by_name=by_name)
        return None if refusal is None else refusal[1]

    def _listed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def _unlocked(self, address: IPAddress, ranges: tuple[IPNetwork, ...]) -> bool:
        """A listed network holds ``address`` and lies inside one of ``ranges`` (no broad default)."""
        return any(
            address in net and any(net.version == r.version and net.subnet_of(r) for r in ranges)  # type: ignore[arg-type]
            for net in self.networks
            if net.version == address.version
        )

    def _judge(self, address: IPAddress, *, by_name: bool) -> tuple[str, str] | None:
        found = kinds(address)
        for kind in found:
            if kind in NEVER_KINDS:
                return "address", f"{address} is {_article(kind)} {kind} address, never a target"
            if kind in GUARDED_KINDS and not self._unlocked(address, GUARDED_KINDS[kind]):
                return kind.value.replace(" ", "-"), (
                    f"{address} is {_article(kind)} {kind} address, refused unless the policy lists "
                    "that address (or a range inside it) explicitly"
                )
        embedded = embedded_ipv4(address)
        if embedded is not None:
            form, inner = embedded
            refusal = self._judge(inner, by_name=False)
            if refusal is not None:
                return refusal[0], f"{address} is a {form} address for {inner}: {refusal[1]}"
        if by_name or self._listed(address):
            return None
        if self.include_defaults and set(found) <= DEFAULT_KINDS[self.mode]:
            return None
        kind = found[0]
        if self.include_defaults and self.mode is PolicyMode.PRODUCTION:
            why = "production mode allows public addresses only unless the target policy lists it"
        elif self.include_defaults:
            why = "dev mode allows public, private and loopback addresses only, unless the policy lists it"
        else:
            why = "it is not in the target policy's allowed hosts or networks"
        return "not-allowed", f"{address} is {_article(kind)} {kind} address; {why}"

    async def _stack_refusal(
        self, address: IPAddress, port: int, name: str | None, resolver: Resolver
    ) -> tuple[str, str] | None:
        for endpoint in self.stack:
            if endpoint.port != port or not await _is_endpoint(endpoint, address, name, resolver):
                continue
            explicit = port in self.ports and (
                (name is not None and name in self.hosts) or address in self._single
            )
            if not explicit:
                return "stack", (
                    f"{address} port {port} is one of Crucible's own services "
                    f"({endpoint.host}:{endpoint.port}), "
                    "refused unless the policy lists that port and that exact address or host name"
                )
        return None


async def _is_endpoint(
    endpoint: StackEndpoint, address: IPAddress, name: str | None, resolver: Resolver
) -> bool:
    if name is not None and name == endpoint.host.lower().rstrip("."):
        return True
    literal = parse_address(endpoint.host)
    if literal is not None:
        literal = plain(literal)
        if literal.is_unspecified:
            loopback = any(address.version == n.version and address in n for n in LOOPBACK_NETWORKS)
            return loopback or _is_local(address)
        return literal == address
    try:
        resolved = await resolver(endpoint.host, endpoint.port)
    except OSError:
        return False
    return any(parse_address(text) is not None and plain(parse_address(text)) == address for text in resolved)  # type: ignore[arg-type]


def _parse(url: str | httpx.URL) -> tuple[httpx.URL, str]:
    """The URL as httpx reads it, and its origin for messages (no path, query or credentials)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise TargetRefused(_origin_of_text(str(url)), f"not a valid URL: {exc}", rule="url") from None
    host = parsed.raw_host.decode("ascii", "replace")
    port = f":{parsed.port}" if parsed.port else ""
    return parsed, f"{parsed.scheme}://{_bracket(host)}{port}"


def _origin_of_text(url: str) -> str:
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{authority}"[:200]
