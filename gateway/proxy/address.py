"""Which address a request comes from, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import netaddr


def parse_ip(text: str) -> netaddr.IPAddress | None:
    """An address from a socket or a header entry; IPv4-mapped IPv6 becomes IPv4."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    try:
        address = netaddr.IPAddress(text, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
    if address.version == 6 and address.is_ipv4_mapped():
        return address.ipv4()
    return address


def client_address(
    peer: str | None, forwarded_for: list[str], trusted: netaddr.IPSet
) -> netaddr.IPAddress | None:
    """The client: the TCP peer, or, behind trusted proxies, the first untrusted hop.

    X-Forwarded-For is read right to left, skipping trusted proxies; the first
    entry that is not one is the client. An unparseable entry stops the walk
    there, since nothing to its left can be trusted either.
    """
    address = parse_ip(peer) if peer else None
    if address is None or address not in trusted:
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
