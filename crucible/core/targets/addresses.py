"""What kind of address an IP is, from Crucible's own tables of the IANA special-purpose registries.

The tables are written out here rather than taken from ``ipaddress``'s ``is_private`` and
``is_global``, whose answers differ between Python versions; a target policy must decide the
same way wherever it runs.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Kind(StrEnum):
    """The kinds of address a policy tells apart, from the most to the least dangerous."""

    #: Never a target, whatever the policy lists: 0.0.0.0 reaches this machine on Linux.
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    #: 240.0.0.0/4, the broadcast address, unallocated IPv6 space, IPv4-compatible IPv6.
    RESERVED = "reserved"
    #: Cloud instance metadata services: credentials live there.
    METADATA = "cloud metadata"
    LINK_LOCAL = "link-local"
    LOOPBACK = "loopback"
    #: RFC 1918, the shared (CGNAT) range, IPv6 unique local addresses.
    PRIVATE = "private"
    #: Documentation, benchmarking, protocol assignments and the like: only reachable when listed.
    SPECIAL = "special-purpose"
    PUBLIC = "public"


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


#: Instance metadata services of the clouds Crucible may run on. Most sit inside
#: 169.254.0.0/16 and are link-local as well; listing that range does not reach them.
METADATA_NETWORKS = _nets(
    "169.254.169.254/32",  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean, Huawei
    "169.254.170.2/32",  # AWS ECS task metadata and credentials
    "169.254.170.23/32",  # AWS EKS Pod Identity agent
    "169.254.0.23/32",  # Tencent Cloud
    "100.100.100.200/32",  # Alibaba Cloud
    "168.63.129.16/32",  # Azure WireServer (a public address)
    "192.0.0.192/32",  # Oracle Cloud (legacy)
    "fd00:ec2::254/128",  # AWS IMDS over IPv6
    "fd00:ec2::23/128",  # AWS EKS Pod Identity agent over IPv6
    "fd20:ce::254/128",  # GCP metadata over IPv6
)
LINK_LOCAL_NETWORKS = _nets("169.254.0.0/16", "fe80::/10")
UNSPECIFIED_NETWORKS = _nets("0.0.0.0/8", "::/128")
MULTICAST_NETWORKS = _nets("224.0.0.0/4", "ff00::/8")
LOOPBACK_NETWORKS = _nets("127.0.0.0/8", "::1/128")
PRIVATE_NETWORKS = _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
SPECIAL_NETWORKS = _nets(
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "198.51.100.0/24",
    "203.0.113.0/24",
    "198.18.0.0/15",  # benchmarking
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.31.196.0/24",  # AS112
    "192.52.193.0/24",  # AMT
    "192.175.48.0/24",  # AS112 direct delegation
    "2001:db8::/32",  # documentation
    "3fff::/20",
    "100::/64",  # discard
    "64:ff9b:1::/48",  # local-use NAT64: where the IPv4 address sits depends on the prefix length
    "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is looked into separately)
    "fec0::/10",  # deprecated site-local
    "5f00::/16",  # segment routing SIDs
)
#: IPv6 forms that carry an IPv4 address the packet really goes to.
NAT64_NETWORK = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE_NETWORK = ipaddress.IPv6Network("::/96")
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
RESERVED_V4 = ipaddress.IPv4Network("240.0.0.0/4")


def _in(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def kinds(address: IPAddress) -> list[Kind]:
    """Every kind ``address`` belongs to, most dangerous first; metadata is link-local too, say."""
    found = [
        kind
        for kind, networks in (
            (Kind.UNSPECIFIED, UNSPECIFIED_NETWORKS),
            (Kind.MULTICAST, MULTICAST_NETWORKS),
            (Kind.METADATA, METADATA_NETWORKS),
            (Kind.LINK_LOCAL, LINK_LOCAL_NETWORKS),
            (Kind.LOOPBACK, LOOPBACK_NETWORKS),
            (Kind.PRIVATE, PRIVATE_NETWORKS),
            (Kind.SPECIAL, SPECIAL_NETWORKS),
        )
        if _in(address, networks)
    ]
    if isinstance(address, ipaddress.IPv4Address) and address in RESERVED_V4:
        found.insert(0, Kind.RESERVED)
    if isinstance(address, ipaddress.IPv6Address) and not found:
        if address in NAT64_NETWORK:
            # Judged by the IPv4 address it carries (see embedded_ipv4).
            return [Kind.PUBLIC]
        if address in IPV4_COMPATIBLE_NETWORK or address not in GLOBAL_UNICAST_V6:
            found.append(Kind.RESERVED)
    return found or [Kind.PUBLIC]


def plain(address: IPAddress) -> IPAddress:
    """The address without its IPv6 zone, and an IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def embedded_ipv4(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address a translating IPv6 form (NAT64, 6to4, Teredo) delivers to, and the form's name."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in NAT64_NETWORK:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address.teredo is not None:
        return "Teredo", address.teredo[1]
    return None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (brackets and an IPv6 zone allowed), or None if it is not one."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
