"""Which address a request comes from, believing X-Forwarded-For only from trusted proxies.

Addresses here are plain integers with their IP version, and sets are sorted
ranges searched by bisection: netaddr parses and validates allowlists and
trusted proxies once, while the checks on every request stay a few hundred
nanoseconds (netaddr's own IPSet membership walks every prefix length).
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from typing import NamedTuple

import netaddr

_V4_MAPPED = 0xFFFF << 32


class IpAddress(NamedTuple):
    """An IPv4 or IPv6 address as its version and integer value."""

    version: int
    value: int

    def __str__(self) -> str:
        if self.version == 4:
            return socket.inet_ntop(socket.AF_INET, self.value.to_bytes(4, "big"))
        return socket.inet_ntop(socket.AF_INET6, self.value.to_bytes(16, "big"))


class AddressSet:
    """An IP set (netaddr parsed it) as sorted, merged ranges for quick membership tests."""

    def __init__(self, addresses: netaddr.IPSet) -> None:
        ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for block in addresses.iter_ipranges():
            ranges[block.version].append((block.first, block.last))
        self._starts = {version: [r[0] for r in found] for version, found in ranges.items()}
        self._ends = {version: [r[1] for r in found] for version, found in ranges.items()}
        self.empty = not ranges[4] and not ranges[6]

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, IpAddress):
            return False
        starts = self._starts[address.version]
        index = bisect_right(starts, address.value) - 1
        return index >= 0 and address.value <= self._ends[address.version][index]


def parse_ip(text: str) -> IpAddress | None:
    """An address from a socket or a header entry; IPv4-mapped IPv6 becomes IPv4.

    inet_pton takes only the plain forms: legacy spellings such as '10.1' or
    '010.0.0.1', scope ids and ports are refused, as they are in allowlists.
    """
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    try:
        return IpAddress(4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
    except (OSError, ValueError):
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):
        return None
    if value >> 32 == 0xFFFF:
        return IpAddress(4, value - _V4_MAPPED)
    return IpAddress(6, value)


def client_address(
    peer: str | None, forwarded_for: list[str], trusted: AddressSet
) -> IpAddress | None:
    """The client: the TCP peer, or, behind trusted proxies, the first untrusted hop.

    X-Forwarded-For is read right to left, skipping trusted proxies; the first
    entry that is not one is the client. An unparseable entry stops the walk
    there, since nothing to its left can be trusted either.
    """
    address = parse_ip(peer) if peer else None
    if address is None or trusted.empty or address not in trusted:
        return address

    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if not hop.strip():
            continue
        hop_address = parse_ip(hop)
        if hop_address is None:
            return address
        address = hop_address
        if address not in trusted:
            return address
    return address
