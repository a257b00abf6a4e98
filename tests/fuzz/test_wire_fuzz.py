"""Hypothesis over the wire: bytes a client library would never send, against a real gateway.

Each test draws requests, sends their bytes as they are on a socket, and holds the
gateway to the same rules: never a 5xx of its own, never a traceback, and every
refusal the JSON error body with X-Request-Id. Settings are fixed and derandomized,
so that CI runs the same cases every time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_from_bytes

import netaddr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import shares
from gateway.errors import ApiError
from gateway.keys import rules
from gateway.proxy.address import AddressSet, client_address, parse_ip
from tests.fuzz.conftest import CASES, FuzzTarget
from tests.raw_http import RawAnswer, assert_error_body, assert_sound, exchange, request_bytes

GATEWAY_OVERRIDES = {"server": {"trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"]}}
"""The fuzzing client is a trusted proxy, so that its X-Forwarded-For chains are read."""

SHARES = b"/webapi/share"
ALLOWED_NET = "198.51.100.0/24"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def allowlisted(fuzz_target: FuzzTarget) -> str:
    """A key that may GET only from ALLOWED_NET; its value."""
    status, body = fuzz_target.admin_call(
        "POST",
        "/admin/api/keys",
        {"name": "allowlisted", "permissions": {"get": True}, "allowedIps": [ALLOWED_NET]},
    )
    assert status == 201, body
    return str(body["value"])


@pytest.fixture(scope="module")
def share_uuid(fuzz_target: FuzzTarget) -> str:
    return fuzz_target.new_share()


def send(port: int, data: bytes, name: str) -> RawAnswer:
    CASES[name] += 1
    answer = exchange(port, data)
    assert_sound(answer)
    return answer


def bearer(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", b"Bearer " + value)]


# Bytes that may appear in a header value on the wire: anything but CR, LF and NUL, which
# end or break the line and are refused by the parser (tested apart, as framing).
header_bytes = st.binary(max_size=200).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
)
# Text of every kind that fits on one header line: no CR or LF (header injection is a
# client's own business, and framing is fuzzed apart), no lone surrogates (not text).
texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=60
)


# --- Authorization ------------------------------------------------------------------------------

authorizations = st.one_of(
    header_bytes,
    st.builds(lambda v: b"Bearer " + v, header_bytes),
    st.builds(
        lambda s, v: s + b" " + v, st.sampled_from([b"bearer", b"BEARER", b"Basic"]), header_bytes
    ),
    st.builds(lambda v: b"Bearer cfe" + v, st.binary(min_size=30, max_size=40)),
)


@fuzz_settings(300)
@given(value=authorizations, admin_listener=st.booleans())
def test_fuzz_authorization_header(
    fuzz_target: FuzzTarget, value: bytes, admin_listener: bool
) -> None:
    """Any Authorization value but a valid one is a 401 UNAUTHORIZED with WWW-Authenticate."""
    value = value.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
    port, path = (
        (fuzz_target.admin_port, b"/admin/api/keys")
        if admin_listener
        else (fuzz_target.public_port, SHARES + b"/abc")
    )
    answer = send(
        port, request_bytes(b"GET", path, [(b"Authorization", value)]), "wire Authorization"
    )

    if answer.status == 400:
        return  # Bytes aiohttp's parser refuses (a lone space, say): the error body, checked.
    assert answer.status == 401, answer
    assert assert_error_body(answer)["error"] == "UNAUTHORIZED"
    assert (answer.header("WWW-Authenticate") or "").startswith("Bearer")


# --- X-Forwarded-For ------------------------------------------------------------------------

hops = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.sampled_from(["198.51.100.7", "10.1.2.3", "127.0.0.1", "::ffff:198.51.100.9", "unknown"]),
    texts.filter(lambda t: "," not in t),
)
chains = st.lists(hops, max_size=8).map(", ".join)


@fuzz_settings(200)
@given(chains=st.lists(chains, min_size=1, max_size=3))
def test_fuzz_x_forwarded_for(fuzz_target: FuzzTarget, allowlisted: str, chains: list[str]) -> None:
    """Any chain gives 200 or 403 IP_NOT_ALLOWED, and the one the checks decide on."""
    headers = bearer(allowlisted.encode()) + [
        (b"X-Forwarded-For", chain.encode()) for chain in chains
    ]
    answer = send(
        fuzz_target.public_port,
        request_bytes(b"GET", SHARES + b"/abc", headers),
        "wire X-Forwarded-For",
    )
    if answer.status == 400:
        assert assert_error_body(answer)["error"] == "BAD_REQUEST"
        return  # A header value aiohttp's parser refuses.

    # What the gateway decided must be what its own rule gives for the chain it received.
    trusted = fuzz_target.process.config["server"]["trusted_proxies"]
    client = client_address("127.0.0.1", chains, AddressSet(netaddr.IPSet(trusted)))
    allowed = client is not None and client in AddressSet(netaddr.IPSet([ALLOWED_NET]))
    expected = 404 if allowed else 403  # 404: the share does not exist, the request went up.
    assert answer.status == expected, (chains, client, answer)
    if not allowed:
        assert assert_error_body(answer)["error"] == "IP_NOT_ALLOWED"


@fuzz_settings(1000)
@given(peer=texts, chain=st.lists(st.one_of(hops, texts), max_size=10))
def test_fuzz_client_address_rule(peer: str, chain: list[str]) -> None:
    """The rule itself: never raises; an untrusted peer is the client; else a parsed entry."""
    CASES["rule client_address"] += 1
    trusted = AddressSet(netaddr.IPSet(["127.0.0.0/8", "10.0.0.0/8"]))
    client = client_address(peer, chain, trusted)

    peer_address = parse_ip(peer)
    if peer_address is None or peer_address not in trusted:
        assert client == peer_address
    else:
        entries = {parse_ip(hop) for header in chain for hop in header.split(",")}
        assert client == peer_address or client in entries


# --- LIST query strings ---------------------------------------------------------------------

LIST_NAMES = ["sort", "sortOrder", "limit", "offset", "contents", "spaceKeys", "other"]
values = st.one_of(
    st.sampled_from(["id", "created_at", "asc", "desc", "0", "1", "1000", "1001", "-1", "F"]),
    st.integers(-(2**70), 2**70).map(str),
    texts,
)
raw_values = st.one_of(
    values.map(lambda v: quote_from_bytes(v.encode(), safe="")),
    st.binary(max_size=20).map(lambda b: quote_from_bytes(b, safe="")),
    st.sampled_from(["%", "%zz", "%ff", "+", "%2C%2c", ",,,", "a=b"]),
)
queries = st.lists(st.tuples(st.sampled_from(LIST_NAMES), raw_values), max_size=8).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)


@fuzz_settings(250)
@given(query=queries)
def test_fuzz_list_query(fuzz_target: FuzzTarget, query: str) -> None:
    """LIST answers 200 or a 400 naming the parameter at fault, whatever the query string."""
    target = SHARES + b"?" + query.encode() if query else SHARES
    answer = send(
        fuzz_target.public_port,
        request_bytes(b"GET", target, bearer(fuzz_target.key_value.encode())),
        "wire LIST query",
    )

    if answer.status == 200:
        assert isinstance(json.loads(answer.body), list)
        return
    refusal = assert_error_body(answer)
    assert (answer.status, refusal["error"]) == (400, "BAD_REQUEST"), answer
    assert refusal["field"] in {None, "sort", "sortOrder", "limit", "offset"}, refusal


@fuzz_settings(1000)
@given(query=st.dictionaries(st.sampled_from(LIST_NAMES), values))
def test_fuzz_parse_list_query_rule(query: dict[str, str]) -> None:
    """The parser itself: a ListQuery within bounds, or a 400 naming a parameter."""
    CASES["rule parse_list_query"] += 1
    try:
        parsed = shares.parse_list_query(query)
    except ApiError as error:
        assert (error.status, error.code) == (400, "BAD_REQUEST")
        assert error.field in {"sort", "sortOrder", "limit", "offset"}
        return
    assert shares.LIMIT_MIN <= parsed.limit <= shares.LIMIT_MAX
    assert 0 <= parsed.offset <= shares.OFFSET_MAX
    assert parsed.sort in shares.SORT_FIELDS and parsed.sort_order in ("asc", "desc")


# --- CREATE and UPDATE bodies ---------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
share_fields = st.sampled_from([*shares.CREATE_FIELDS, "id", "uuid", "other"])
bodies = st.one_of(
    st.dictionaries(share_fields, json_values, max_size=6),
    st.dictionaries(share_fields, json_values, max_size=6).map(lambda d: {"contentId": 1, **d}),
    json_values,
)


def body_bytes(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


@fuzz_settings(250)
@given(document=bodies)
def test_fuzz_create_body(fuzz_target: FuzzTarget, document: object) -> None:
    """CREATE answers 201 exactly when the gateway's own rules accept the body, else 400."""
    answer = send(
        fuzz_target.public_port,
        request_bytes(
            b"POST",
            SHARES,
            [*bearer(fuzz_target.key_value.encode()), (b"Content-Type", b"application/json")],
            body_bytes(document),
        ),
        "wire CREATE body",
    )

    try:
        shares.validate_create(json.loads(body_bytes(document)))
    except (ApiError, ValueError):
        assert (answer.status, assert_error_body(answer)["error"]) == (400, "BAD_REQUEST")
    else:
        # What the gateway let through, the reference backend must store.
        assert answer.status == 201, answer


@fuzz_settings(200)
@given(document=bodies, method=st.sampled_from([b"PUT", b"PATCH"]))
def test_fuzz_update_body(
    fuzz_target: FuzzTarget, share_uuid: str, document: Any, method: bytes
) -> None:
    """UPDATE answers 200 exactly when the gateway's own rules accept the body, else 400."""
    answer = send(
        fuzz_target.public_port,
        request_bytes(
            method,
            SHARES + b"/" + share_uuid.encode(),
            [*bearer(fuzz_target.key_value.encode()), (b"Content-Type", b"application/json")],
            body_bytes(document),
        ),
        "wire UPDATE body",
    )

    try:
        shares.validate_update(json.loads(body_bytes(document)))
    except (ApiError, ValueError):
        assert (answer.status, assert_error_body(answer)["error"]) == (400, "BAD_REQUEST")
    else:
        assert answer.status == 200, answer


key_fields = st.sampled_from(
    [
        "name",
        "permissions",
        "admin",
        "notValidBefore",
        "notValidAfter",
        "allowedIps",
        "description",
        "rateLimit",
        "id",
        "usageCount",
        "other",
    ]
)
key_bodies = st.one_of(
    st.dictionaries(key_fields, json_values, max_size=6).map(lambda d: {"name": "k", **d}),
    st.dictionaries(key_fields, json_values, max_size=6),
    json_values,
)


def parses(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


# Nesting deep enough to exhaust a recursive parser, and bodies that are not JSON at all.
not_json = st.one_of(
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.binary(max_size=100).filter(lambda data: not parses(data)),
    st.sampled_from([b"NaN", b"[1, 2", b'{"name": "a"', b"\xef\xbb\xbf{"]),
)


@fuzz_settings(200)
@given(document=key_bodies)
def test_fuzz_admin_key_body(fuzz_target: FuzzTarget, document: object) -> None:
    """POST /admin/api/keys answers 201 exactly when the key rules accept the body, else 400."""
    answer = send(
        fuzz_target.admin_port,
        request_bytes(
            b"POST",
            b"/admin/api/keys",
            [
                (b"Authorization", fuzz_target.process.admin_headers["Authorization"].encode()),
                (b"Content-Type", b"application/json"),
            ],
            body_bytes(document),
        ),
        "wire admin key body",
    )

    try:
        rules.parse_new_key(json.loads(body_bytes(document)))
    except (ApiError, ValueError):
        assert (answer.status, assert_error_body(answer)["error"]) == (400, "BAD_REQUEST")
    else:
        assert answer.status == 201, answer


@fuzz_settings(60)
@given(data=not_json, admin_listener=st.booleans())
def test_fuzz_bodies_not_json(fuzz_target: FuzzTarget, data: bytes, admin_listener: bool) -> None:
    """Bodies that are not JSON, or nest too deep to parse, are a 400 on both listeners."""
    if admin_listener:
        port, path = fuzz_target.admin_port, b"/admin/api/keys"
        auth = fuzz_target.process.admin_headers["Authorization"].encode()
    else:
        port, path, auth = (
            fuzz_target.public_port,
            SHARES,
            b"Bearer " + fuzz_target.key_value.encode(),
        )
    headers = [(b"Authorization", auth), (b"Content-Type", b"application/json")]

    answer = send(port, request_bytes(b"POST", path, headers, data), "wire bodies not JSON")

    assert (answer.status, assert_error_body(answer)["error"]) == (400, "BAD_REQUEST"), answer


# --- bytes that are not UTF-8, anywhere ------------------------------------------------------

anywhere = st.sampled_from(["path", "query", "header", "content-type", "request-id", "body"])
raw = st.binary(min_size=1, max_size=64).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"") or b"\xff"
)


@fuzz_settings(300)
@given(where=anywhere, data=raw, admin_listener=st.booleans())
def test_fuzz_raw_bytes(
    fuzz_target: FuzzTarget, where: str, data: bytes, admin_listener: bool
) -> None:
    """Raw bytes in the path, query, headers or body: an answer, and the error body if refused."""
    if admin_listener:
        port, auth, path = (
            fuzz_target.admin_port,
            fuzz_target.process.admin_headers["Authorization"].encode(),
            b"/admin/api/keys",
        )
    else:
        port, auth, path = (
            fuzz_target.public_port,
            b"Bearer " + fuzz_target.key_value.encode(),
            SHARES,
        )
    headers = [(b"Authorization", auth), (b"Content-Type", b"application/json")]
    body = b'{"contentId": 1}' if not admin_listener else b'{"name": "raw"}'
    target = path
    if where == "path":
        target = path + b"/" + data.replace(b" ", b"").replace(b"?", b"")
    elif where == "query":
        target = path + b"?contents=" + data.replace(b" ", b"+")
    elif where == "header":
        headers.append((b"X-Fuzz", data))
    elif where == "content-type":
        headers[1] = (b"Content-Type", b"application/json; charset=" + data)
    elif where == "request-id":
        headers.append((b"X-Request-Id", data))
    else:
        body = b'{"name": "' + data.replace(b'"', b"") + b'"}'

    send(port, request_bytes(b"POST", target, headers, body), "wire raw bytes")


# --- sizes --------------------------------------------------------------------------------


@fuzz_settings(60)
@given(
    value_size=st.integers(1, 20_000),
    count=st.integers(0, 200),
    where=st.sampled_from(["Authorization", "X-Forwarded-For", "X-Other", "path"]),
)
def test_fuzz_huge_headers(
    fuzz_target: FuzzTarget, value_size: int, count: int, where: str
) -> None:
    """Long headers, many headers, long paths: served or a 400 in the error body."""
    big = b"a" * value_size
    headers = [(b"X-H%d" % i, b"v") for i in range(count)]
    target = SHARES + b"/abc"
    if where == "path":
        target = SHARES + b"/" + big
    else:
        headers.append((where.encode(), big))
    answer = send(
        fuzz_target.public_port, request_bytes(b"GET", target, headers), "wire huge headers"
    )
    assert answer.status in (400, 401), answer
