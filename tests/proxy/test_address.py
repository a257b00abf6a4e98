"""Which address a request comes from: gateway.proxy.address.client_address."""

from __future__ import annotations

import netaddr
import pytest

from gateway.proxy.address import AddressSet, client_address, parse_ip

NONE: list[str] = []
LOOPBACK = ["127.0.0.1/32"]
PROXIES = ["10.0.0.0/8", "127.0.0.1/32"]
V6_PROXIES = ["::1/128", "2001:db8:ffff::/48"]


def trusted(cidrs: list[str]) -> AddressSet:
    return AddressSet(netaddr.IPSet(cidrs))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "cidrs", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("198.51.100.7", NONE, NONE, "198.51.100.7"),
        ("198.51.100.7", ["203.0.113.1"], NONE, "198.51.100.7"),
        ("198.51.100.7", ["203.0.113.1"], LOOPBACK, "198.51.100.7"),
        ("198.51.100.7", ["127.0.0.1"], LOOPBACK, "198.51.100.7"),
        ("198.51.100.7", ["10.0.0.1, 127.0.0.1"], PROXIES, "198.51.100.7"),
        # A trusted peer with nothing forwarded is the client itself.
        ("127.0.0.1", NONE, LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", [""], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", [" , ,"], LOOPBACK, "127.0.0.1"),
        # One trusted hop: the entry it appended.
        ("127.0.0.1", ["203.0.113.1"], LOOPBACK, "203.0.113.1"),
        ("127.0.0.1", ["  203.0.113.1  "], LOOPBACK, "203.0.113.1"),
        # Left of the first untrusted entry, everything is the client's own claim.
        ("127.0.0.1", ["192.0.2.9, 203.0.113.1"], LOOPBACK, "203.0.113.1"),
        ("127.0.0.1", ["10.0.0.5, 203.0.113.1"], PROXIES, "203.0.113.1"),
        # Several trusted hops are skipped, right to left.
        ("127.0.0.1", ["203.0.113.1, 10.0.0.2"], PROXIES, "203.0.113.1"),
        ("127.0.0.1", ["192.0.2.9, 203.0.113.1, 10.0.0.3, 10.0.0.2"], PROXIES, "203.0.113.1"),
        ("10.1.2.3", ["203.0.113.1,10.0.0.3,10.0.0.2"], PROXIES, "203.0.113.1"),
        # A chain of trusted proxies only: the furthest of them.
        ("127.0.0.1", ["10.0.0.3, 10.0.0.2"], PROXIES, "10.0.0.3"),
        ("127.0.0.1", ["127.0.0.1"], LOOPBACK, "127.0.0.1"),
        # Garbage stops the walk: the last trusted hop is the furthest that can be believed.
        ("127.0.0.1", ["garbage"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.1, unknown"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.1, 999.1.1.1, 10.0.0.2"], PROXIES, "10.0.0.2"),
        ("127.0.0.1", ["garbage, 203.0.113.1"], LOOPBACK, "203.0.113.1"),
        ("127.0.0.1", ["10.0.0.2, garbage"], PROXIES, "127.0.0.1"),
        # Legacy and ambiguous spellings are not addresses.
        ("127.0.0.1", ["010.0.0.1"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["0x7f000001"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["10.1"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.1/24"], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["fe80::1%eth0"], LOOPBACK, "127.0.0.1"),
        # Empty entries are skipped, not taken for garbage.
        ("127.0.0.1", ["203.0.113.1,, ,"], LOOPBACK, "203.0.113.1"),
        # IPv6 peers, entries and bracketed forms (with or without a port).
        ("::1", ["2001:db8::7"], V6_PROXIES, "2001:db8::7"),
        ("::1", ["[2001:db8::7]"], V6_PROXIES, "2001:db8::7"),
        ("::1", ["[2001:db8::7]:4711"], V6_PROXIES, "2001:db8::7"),
        ("::1", ["2001:DB8:0:0:0:0:0:7"], V6_PROXIES, "2001:db8::7"),
        ("::1", ["2001:db8::7, 2001:db8:ffff::1"], V6_PROXIES, "2001:db8::7"),
        ("::1", ["203.0.113.1"], V6_PROXIES, "203.0.113.1"),
        ("2001:db8::5", ["203.0.113.1"], V6_PROXIES, "2001:db8::5"),
        ("::1", ["2001:db8::7"], LOOPBACK, "::1"),
        # IPv4-mapped IPv6 is the IPv4 address, as peer, as entry and for trust.
        ("::ffff:127.0.0.1", ["203.0.113.1"], LOOPBACK, "203.0.113.1"),
        ("::ffff:198.51.100.7", ["203.0.113.1"], LOOPBACK, "198.51.100.7"),
        ("127.0.0.1", ["::ffff:203.0.113.1"], LOOPBACK, "203.0.113.1"),
        ("127.0.0.1", ["203.0.113.1, ::ffff:10.0.0.2"], PROXIES, "203.0.113.1"),
        ("127.0.0.1", ["[::ffff:203.0.113.1]:80"], LOOPBACK, "203.0.113.1"),
        # Several X-Forwarded-For headers are one list, in the order received.
        ("127.0.0.1", ["192.0.2.9", "203.0.113.1"], LOOPBACK, "203.0.113.1"),
        ("127.0.0.1", ["203.0.113.1", "10.0.0.2"], PROXIES, "203.0.113.1"),
        ("127.0.0.1", ["192.0.2.9, 203.0.113.1", "10.0.0.3", "10.0.0.2"], PROXIES, "203.0.113.1"),
        ("127.0.0.1", ["203.0.113.1", ""], LOOPBACK, "203.0.113.1"),
        ("198.51.100.7", ["203.0.113.1", "127.0.0.1"], LOOPBACK, "198.51.100.7"),
    ],
)
def test_client_address_table(
    peer: str, forwarded_for: list[str], cidrs: list[str], expected: str
) -> None:
    """The client is the peer, or behind trusted peers the right-most untrusted entry."""
    assert str(client_address(peer, forwarded_for, trusted(cidrs))) == expected


@pytest.mark.parametrize("peer", [None, "", "garbage", "[::1"])
def test_client_address_unknown_peer(peer: str | None) -> None:
    """A peer that is missing or not an address gives no client address, XFF or not."""
    assert client_address(peer, ["203.0.113.1"], trusted(["0.0.0.0/0", "::/0"])) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::ffff:c000:201", "192.0.2.1"),
        ("::1", "::1"),
        ("192.0.2.1:443", None),
        ("256.0.0.1", None),
        ("1.2.3", None),
        ("", None),
        ("[]", None),
        ("unknown", None),
    ],
)
def test_parse_ip_forms(text: str, expected: str | None) -> None:
    """Socket and header spellings of an address, normalised; anything else is None."""
    address = parse_ip(text)
    assert (None if address is None else str(address)) == expected
