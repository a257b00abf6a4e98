"""The checks on every share request, in order, and the answer each refusal gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway.keys.values import new_value
from tests.proxy.wire import ALL, SHARES, Proxy, StartProxy, bearer, error_of
from tests.upstreams import RecordingUpstream

OPERATIONS = ("get", "list", "create", "update", "delete")
CLIENT = "203.0.113.7"


@dataclass(frozen=True)
class Call:
    """One share request: method, path with query, and an optional JSON body."""

    method: str
    path: str
    body: object = None

    async def send(
        self, proxy: Proxy, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        async with proxy.public.request(
            self.method, self.path, json=self.body, headers=headers or {}
        ) as response:
            await response.read()
            return response


CALLS = {
    "GET": Call("GET", f"{SHARES}/abc"),
    "LIST": Call("GET", f"{SHARES}?contents=1"),
    "CREATE": Call("POST", SHARES, {"contentId": 1}),
    "UPDATE-PUT": Call("PUT", f"{SHARES}/abc", {"name": "renamed"}),
    "UPDATE-PATCH": Call("PATCH", f"{SHARES}/abc", {"name": "renamed"}),
    "DELETE": Call("DELETE", f"{SHARES}/abc"),
}
PERMISSION_OF = {
    "GET": "get",
    "LIST": "list",
    "CREATE": "create",
    "UPDATE-PUT": "update",
    "UPDATE-PATCH": "update",
    "DELETE": "delete",
}


@pytest.fixture
async def trusting(start_proxy: StartProxy, upstream: RecordingUpstream) -> Proxy:
    """A gateway trusting 127.0.0.1's X-Forwarded-For, with bodies of up to 100 bytes."""
    return await start_proxy(
        upstream=upstream.config(timeout_s=5),
        server={"trusted_proxies": ["127.0.0.1/32"], "max_body_bytes": 100},
    )


# --- 401 UNAUTHORIZED ---------------------------------------------------------------------

Authorization = Callable[[Proxy], Awaitable[str | None]]


async def no_header(proxy: Proxy) -> str | None:
    return None


def fixed(header: str) -> Authorization:
    async def make(proxy: Proxy) -> str | None:
        return header

    return make


def with_key(shape: Callable[[str], str]) -> Authorization:
    """A header made from a real, working key's value."""

    async def make(proxy: Proxy) -> str | None:
        key = await proxy.create_key(permissions=ALL)
        return shape(key.value)

    return make


def flip_last(value: str) -> str:
    return value[:-1] + ("A" if value[-1] != "A" else "B")


def flip_body(value: str) -> str:
    return value[:5] + ("A" if value[5] != "A" else "B") + value[6:]


async def deleted_key(proxy: Proxy) -> str | None:
    key = await proxy.create_key(permissions=ALL)
    assert (await CALLS["GET"].send(proxy, key.auth)).status == 200
    await proxy.delete_key(key.id)
    return f"Bearer {key.value}"


UNAUTHORIZED: dict[str, Authorization] = {
    "no header": no_header,
    "empty header": fixed(""),
    "basic": fixed("Basic dXNlcjpwYXNz"),
    "bearer without key": fixed("Bearer"),
    "bearer with blanks": fixed("Bearer    "),
    "other scheme, real key": with_key(lambda value: f"Token {value}"),
    "no scheme, real key": with_key(lambda value: value),
    "not a key": fixed("Bearer not-a-key"),
    "upstream key": fixed("Bearer upstream-secret-key-123"),
    "wrong checksum": with_key(lambda value: f"Bearer {flip_last(value)}"),
    "mistyped body": with_key(lambda value: f"Bearer {flip_body(value)}"),
    "truncated": with_key(lambda value: f"Bearer {value[:-1]}"),
    "trailing word": with_key(lambda value: f"Bearer {value} extra"),
    "unknown well-formed": fixed(f"Bearer {new_value()}"),
    "deleted": deleted_key,
}


@pytest.mark.parametrize("make", UNAUTHORIZED.values(), ids=UNAUTHORIZED.keys())
async def test_checks_unauthorized(
    proxy: Proxy, upstream: RecordingUpstream, make: Authorization
) -> None:
    """Without a live key in a Bearer header: 401 UNAUTHORIZED with WWW-Authenticate."""
    header = await make(proxy)
    sent = len(upstream.requests)
    headers = {} if header is None else {"Authorization": header}

    response = await CALLS["GET"].send(proxy, headers)

    assert await error_of(response) == (401, "UNAUTHORIZED", None)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(upstream.requests) == sent


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_checks_bearer_scheme_any_case(proxy: Proxy, scheme: str) -> None:
    """The auth scheme is case-insensitive, as HTTP has it."""
    key = await proxy.create_key(permissions=ALL)
    response = await CALLS["GET"].send(proxy, {"Authorization": f"{scheme} {key.value}"})
    assert response.status == 200


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not-a-key", id="not a key"),
        pytest.param(flip_last(new_value()), id="wrong checksum"),
        pytest.param("cfe" + "0" * 38, id="right length, no checksum"),
    ],
)
async def test_checks_malformed_key_needs_no_lookup(proxy: Proxy, value: str) -> None:
    """A key that fails its shape or checksum is refused without asking the store."""
    before = proxy.state.cache.lookups
    response = await CALLS["GET"].send(proxy, bearer(value))
    assert await error_of(response) == (401, "UNAUTHORIZED", None)
    assert proxy.state.cache.lookups == before


async def test_checks_deleted_key_refused_on_next_request(proxy: Proxy) -> None:
    """Deleting a key through the admin API refuses its very next request."""
    key = await proxy.create_key(permissions=ALL)
    other = await proxy.create_key(permissions=ALL)
    assert (await CALLS["GET"].send(proxy, key.auth)).status == 200

    await proxy.delete_key(key.id)

    assert await error_of(await CALLS["GET"].send(proxy, key.auth)) == (
        401,
        "UNAUTHORIZED",
        None,
    )
    assert (await CALLS["GET"].send(proxy, other.auth)).status == 200


# --- 401 validity window ------------------------------------------------------------------

EDGE = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        ({"notValidBefore": "2030-01-01T12:00:00Z"}, EDGE - TICK, "KEY_NOT_YET_VALID"),
        ({"notValidBefore": "2030-01-01T12:00:00Z"}, EDGE - timedelta(days=9), "KEY_NOT_YET_VALID"),
        ({"notValidBefore": "2030-01-01T12:00:00Z"}, EDGE, None),
        ({"notValidBefore": "2030-01-01T12:00:00Z"}, EDGE + TICK, None),
        ({"notValidAfter": "2030-01-01T12:00:00Z"}, EDGE - TICK, None),
        ({"notValidAfter": "2030-01-01T12:00:00Z"}, EDGE, "KEY_EXPIRED"),
        ({"notValidAfter": "2030-01-01T12:00:00Z"}, EDGE + timedelta(days=9), "KEY_EXPIRED"),
        # Offsets are instants: 14:00+02:00 is 12:00Z; no offset means UTC.
        ({"notValidBefore": "2030-01-01T14:00:00+02:00"}, EDGE - TICK, "KEY_NOT_YET_VALID"),
        ({"notValidBefore": "2030-01-01T14:00:00+02:00"}, EDGE, None),
        ({"notValidAfter": "2030-01-01T07:00:00-05:00"}, EDGE - TICK, None),
        ({"notValidAfter": "2030-01-01T07:00:00-05:00"}, EDGE, "KEY_EXPIRED"),
        ({"notValidAfter": "2030-01-01T12:00:00"}, EDGE - TICK, None),
        ({"notValidAfter": "2030-01-01T12:00:00"}, EDGE, "KEY_EXPIRED"),
        # Both ends.
        (
            {"notValidBefore": "2030-01-01T12:00:00Z", "notValidAfter": "2030-01-01T13:00:00Z"},
            EDGE - TICK,
            "KEY_NOT_YET_VALID",
        ),
        (
            {"notValidBefore": "2030-01-01T12:00:00Z", "notValidAfter": "2030-01-01T13:00:00Z"},
            EDGE + timedelta(minutes=30),
            None,
        ),
        (
            {"notValidBefore": "2030-01-01T11:00:00Z", "notValidAfter": "2030-01-01T12:00:00Z"},
            EDGE,
            "KEY_EXPIRED",
        ),
    ],
)
async def test_checks_window_edges(
    proxy: Proxy,
    monkeypatch: pytest.MonkeyPatch,
    window: dict[str, str],
    now: datetime,
    expected: str | None,
) -> None:
    """Valid from notValidBefore (inclusive) until notValidAfter (exclusive)."""
    key = await proxy.create_key(permissions=ALL)
    await proxy.patch_key(key.id, **window)
    monkeypatch.setattr("gateway.proxy.routes.utcnow", lambda: now)

    response = await CALLS["GET"].send(proxy, key.auth)

    if expected is None:
        assert response.status == 200
    else:
        assert await error_of(response) == (401, expected, None)


async def test_checks_window_change_applies_to_next_request(proxy: Proxy) -> None:
    """A window changed through the admin API is enforced from the next request on."""
    key = await proxy.create_key(permissions=ALL)
    now = datetime.now(UTC)
    assert (await CALLS["GET"].send(proxy, key.auth)).status == 200

    await proxy.patch_key(key.id, notValidAfter=(now - timedelta(seconds=1)).isoformat())
    assert await error_of(await CALLS["GET"].send(proxy, key.auth)) == (401, "KEY_EXPIRED", None)

    await proxy.patch_key(
        key.id, notValidAfter=None, notValidBefore=(now + timedelta(hours=1)).isoformat()
    )
    assert await error_of(await CALLS["GET"].send(proxy, key.auth)) == (
        401,
        "KEY_NOT_YET_VALID",
        None,
    )

    await proxy.patch_key(key.id, notValidBefore=(now - timedelta(hours=1)).isoformat())
    assert (await CALLS["GET"].send(proxy, key.auth)).status == 200


# --- 403 IP_NOT_ALLOWED -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed_ips", "client", "allowed"),
    [
        ([], "198.51.100.1", True),
        ([], "2001:db8::1", True),
        (["203.0.113.7"], "203.0.113.7", True),
        (["203.0.113.7"], "203.0.113.8", False),
        (["203.0.113.7"], "::ffff:203.0.113.7", True),
        (["203.0.113.0/24"], "203.0.113.0", True),
        (["203.0.113.0/24"], "203.0.113.255", True),
        (["203.0.113.0/24"], "203.0.114.0", False),
        (["203.0.113.0/24"], "203.0.112.255", False),
        (["203.0.113.10-203.0.113.20"], "203.0.113.10", True),
        (["203.0.113.10-203.0.113.20"], "203.0.113.20", True),
        (["203.0.113.10-203.0.113.20"], "203.0.113.9", False),
        (["203.0.113.10-203.0.113.20"], "203.0.113.21", False),
        (["2001:db8::5"], "2001:db8::5", True),
        (["2001:db8::5"], "[2001:db8::5]", True),
        (["2001:db8::5"], "2001:db8::6", False),
        (["2001:db8::/32"], "2001:db8:ffff::1", True),
        (["2001:db8::/32"], "2001:db9::1", False),
        (["2001:db8::10-2001:db8::20"], "2001:db8::1f", True),
        (["2001:db8::10-2001:db8::20"], "2001:db8::21", False),
        # Families do not mix: an IPv4 list refuses IPv6 clients and the other way round.
        (["0.0.0.0/0"], "2001:db8::1", False),
        (["::/0"], "203.0.113.7", False),
        (["198.51.100.0/24", "2001:db8::/32", "203.0.113.7"], "203.0.113.7", True),
        (["198.51.100.0/24", "2001:db8::/32", "203.0.113.7"], "2001:db8::1", True),
        (["198.51.100.0/24", "2001:db8::/32", "203.0.113.7"], "192.0.2.1", False),
        # An entry that is not an address never matches a list.
        (["203.0.113.7"], "garbage", False),
    ],
)
async def test_checks_allowlist(
    trusting: Proxy, allowed_ips: list[str], client: str, allowed: bool
) -> None:
    """The client address must fall in the key's allowlist: addresses, CIDRs, ranges."""
    key = await trusting.create_key(permissions=ALL, allowedIps=allowed_ips)

    response = await CALLS["GET"].send(trusting, {**key.auth, "X-Forwarded-For": client})

    if allowed:
        assert response.status == 200
    else:
        assert await error_of(response) == (403, "IP_NOT_ALLOWED", None)


@pytest.mark.parametrize(
    ("allowed_ips", "allowed"),
    [(["203.0.113.7"], False), (["127.0.0.1"], True), (["127.0.0.0/8"], True)],
)
async def test_checks_allowlist_not_spoofed_by_untrusted_peer(
    proxy: Proxy, allowed_ips: list[str], allowed: bool
) -> None:
    """From a peer that is not a trusted proxy, X-Forwarded-For does not change the client."""
    key = await proxy.create_key(permissions=ALL, allowedIps=allowed_ips)

    response = await CALLS["GET"].send(proxy, {**key.auth, "X-Forwarded-For": CLIENT})

    if allowed:
        assert response.status == 200
    else:
        assert await error_of(response) == (403, "IP_NOT_ALLOWED", None)


@pytest.mark.parametrize(
    ("allowed_ips", "allowed"),
    [(["::1"], True), (["::/0"], True), (["127.0.0.1"], False), (["2001:db8::/32"], False)],
)
async def test_checks_allowlist_ipv6_peer(
    start_proxy: StartProxy, upstream: RecordingUpstream, allowed_ips: list[str], allowed: bool
) -> None:
    """A client connecting over IPv6 is matched by its IPv6 address."""
    proxy = await start_proxy(upstream=upstream.config(), server={"listen": "[::1]:0"})
    key = await proxy.create_key(permissions=ALL, allowedIps=allowed_ips)

    response = await CALLS["GET"].send(proxy, key.auth)

    if allowed:
        assert response.status == 200
    else:
        assert await error_of(response) == (403, "IP_NOT_ALLOWED", None)


async def test_checks_allowlist_change_applies_to_next_request(trusting: Proxy) -> None:
    """An allowlist changed through the admin API is enforced from the next request on."""
    key = await trusting.create_key(permissions=ALL, allowedIps=["203.0.113.0/24"])
    headers = {**key.auth, "X-Forwarded-For": CLIENT}
    assert (await CALLS["GET"].send(trusting, headers)).status == 200

    await trusting.patch_key(key.id, allowedIps=["198.51.100.0/24"])
    assert await error_of(await CALLS["GET"].send(trusting, headers)) == (
        403,
        "IP_NOT_ALLOWED",
        None,
    )

    await trusting.patch_key(key.id, allowedIps=[])
    assert (await CALLS["GET"].send(trusting, headers)).status == 200


# --- 403 OPERATION_NOT_ALLOWED ------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS, ids=CALLS.keys())
@pytest.mark.parametrize("permission", OPERATIONS)
async def test_checks_each_permission_opens_only_its_operation(
    proxy: Proxy, upstream: RecordingUpstream, permission: str, call: str
) -> None:
    """A key with one permission reaches the upstream for that operation only."""
    key = await proxy.create_key(permissions={permission: True})

    response = await CALLS[call].send(proxy, key.auth)

    if PERMISSION_OF[call] == permission:
        assert response.status == 200
        assert len(upstream.requests) == 1
    else:
        assert await error_of(response) == (403, "OPERATION_NOT_ALLOWED", None)
        assert upstream.requests == []


@pytest.mark.parametrize("call", CALLS, ids=CALLS.keys())
async def test_checks_no_permission_opens_nothing(
    proxy: Proxy, upstream: RecordingUpstream, call: str
) -> None:
    """A key with no permission at all, even an admin key, is refused every operation."""
    key = await proxy.create_key(admin=True)
    response = await CALLS[call].send(proxy, key.auth)
    assert await error_of(response) == (403, "OPERATION_NOT_ALLOWED", None)
    assert upstream.requests == []


async def test_checks_permission_change_applies_to_next_request(proxy: Proxy) -> None:
    """Permissions changed through the admin API are enforced from the next request on."""
    key = await proxy.create_key(permissions={"get": True})
    assert (await CALLS["GET"].send(proxy, key.auth)).status == 200

    await proxy.patch_key(key.id, permissions={"get": False, "delete": True})
    assert await error_of(await CALLS["GET"].send(proxy, key.auth)) == (
        403,
        "OPERATION_NOT_ALLOWED",
        None,
    )
    assert (await CALLS["DELETE"].send(proxy, key.auth)).status == 200


# --- 403 FORBIDDEN: LIST scope ------------------------------------------------------------


@pytest.mark.parametrize(
    ("admin", "query", "allowed"),
    [
        (False, "", False),
        (False, "?contents=", False),
        (False, "?contents=,%20,", False),
        (False, "?spaceKeys=", False),
        (False, "?sort=name&limit=5", False),
        (False, "?Contents=1", False),
        (False, "?sort=bogus", False),
        (False, "?contents=1", True),
        (False, "?contents=1,2,3", True),
        (False, "?spaceKeys=DEV", True),
        (False, "?spaceKeys=DEV,%20OPS", True),
        (False, "?contents=&spaceKeys=DEV", True),
        (True, "", True),
        (True, "?sort=name&sortOrder=desc", True),
        (True, "?contents=1", True),
    ],
)
async def test_checks_list_scope(
    proxy: Proxy, upstream: RecordingUpstream, admin: bool, query: str, allowed: bool
) -> None:
    """Only an admin key may LIST without naming contents or spaceKeys."""
    key = await proxy.create_key(permissions={"list": True}, admin=admin)

    response = await Call("GET", SHARES + query).send(proxy, key.auth)

    if allowed:
        assert response.status == 200
        assert len(upstream.requests) == 1
    else:
        assert await error_of(response) == (403, "FORBIDDEN", None)
        assert upstream.requests == []


# --- 400 BAD_REQUEST ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=bogus", "sort"),
        ("sort=createdAt", "sort"),
        ("sort=", "sort"),
        ("sort=selected_users_config", "sort"),
        ("sortOrder=up", "sortOrder"),
        ("sortOrder=ASC", "sortOrder"),
        ("sortOrder=", "sortOrder"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("offset=99999999999999999999", "offset"),
        ("limit=10&offset=x", "offset"),
    ],
)
async def test_checks_bad_list_parameters(
    proxy: Proxy, upstream: RecordingUpstream, query: str, field: str
) -> None:
    """A LIST parameter out of its range or set is a 400 naming it; nothing goes upstream."""
    key = await proxy.create_key(permissions={"list": True})

    response = await Call("GET", f"{SHARES}?contents=1&{query}").send(proxy, key.auth)

    assert await error_of(response) == (400, "BAD_REQUEST", field)
    assert upstream.requests == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=1",
        "limit=1000",
        "offset=0",
        "offset=2147483647",
        "sort=id&sortOrder=asc",
        "sort=created_at&sortOrder=desc",
        "sort=content_id",
        "sort=space_key&limit=20&offset=40",
        "unknown=kept",
    ],
)
async def test_checks_good_list_parameters(
    proxy: Proxy, upstream: RecordingUpstream, query: str
) -> None:
    """LIST parameters at the edges of their ranges pass."""
    key = await proxy.create_key(permissions={"list": True})
    response = await Call("GET", f"{SHARES}?contents=1&{query}").send(proxy, key.auth)
    assert response.status == 200
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("POST", b"{", "body"),
        ("POST", b"", "body"),
        ("POST", b"{'contentId': 1}", "body"),
        ("POST", b"[]", "body"),
        ("POST", b'"share"', "body"),
        ("POST", b"{}", "contentId"),
        ("POST", b'{"name": "no content"}', "contentId"),
        ("POST", b'{"contentId": true}', "contentId"),
        ("POST", b'{"contentId": 1.5}', "contentId"),
        ("POST", b'{"contentId": null}', "contentId"),
        ("POST", b'{"contentId": ""}', "contentId"),
        ("POST", b'{"contentId": 1, "contentType": "WIKI"}', "contentType"),
        ("POST", b'{"contentId": 1, "contentType": "page"}', "contentType"),
        ("POST", b'{"contentId": 1, "showComments": "yes"}', "showComments"),
        ("POST", b'{"contentId": 1, "expiration": "tomorrow"}', "expiration"),
        ("POST", b'{"contentId": 1, "name": 7}', "name"),
        ("POST", b'{"contentId": 1, "color": "red"}', "color"),
        (
            "POST",
            b'{"contentId": 1, "selectedUsersConfig": {"list": [{"email": 5}]}}',
            "selectedUsersConfig.list[0].email",
        ),
        # A field twice: the gateway and the upstream might each read a different one.
        ("POST", b'{"contentId": true, "contentId": 1}', "body"),
        ("POST", b'{"contentId": 1, "contentType": "WIKI", "contentType": "PAGE"}', "body"),
        (
            "POST",
            b'{"contentId": 1, "selectedUsersConfig": {"allowed": true, "allowed": 1}}',
            "body",
        ),
        # Not JSON, though Python's parser would take it.
        ("POST", b'{"contentId": NaN}', "body"),
        ("POST", b'{"contentId": 1, "expiration": -Infinity}', "body"),
        ("POST", b"[" * 100_000, "body"),
        ("PUT", b"nul", "body"),
        ("PUT", b'{"contentId": 1}', "contentId"),
        ("PUT", b'{"contentType": "WIKI"}', "contentType"),
        ("PATCH", b'{"allowAddComment": 1}', "allowAddComment"),
    ],
)
async def test_checks_bad_bodies(
    proxy: Proxy, upstream: RecordingUpstream, method: str, body: bytes, field: str
) -> None:
    """A body that is not JSON or breaks the Share contract is a 400 naming the field."""
    key = await proxy.create_key(permissions=ALL)
    path = SHARES if method == "POST" else f"{SHARES}/abc"

    async with proxy.public.request(
        method, path, data=body, headers={**key.auth, "Content-Type": "application/json"}
    ) as response:
        assert await error_of(response) == (400, "BAD_REQUEST", field)
    assert upstream.requests == []


@pytest.mark.parametrize("call", ["GET", "UPDATE-PUT", "DELETE"])
@pytest.mark.parametrize("uuid", ["bad%20uuid", "a.b", "%C3%A9", "x" * 129])
async def test_checks_bad_share_uuid(
    proxy: Proxy, upstream: RecordingUpstream, call: str, uuid: str
) -> None:
    """A share uuid outside 1 to 128 URL-safe characters is a 400 naming uuid."""
    key = await proxy.create_key(permissions=ALL)
    template = CALLS[call]

    response = await Call(template.method, f"{SHARES}/{uuid}", template.body).send(proxy, key.auth)

    assert await error_of(response) == (400, "BAD_REQUEST", "uuid")
    assert upstream.requests == []


# --- 413 and 415 --------------------------------------------------------------------------


def body_of_size(size: int) -> bytes:
    """A valid CREATE body of exactly `size` bytes."""
    frame = json.dumps({"contentId": 1, "name": ""}).encode()
    body = json.dumps({"contentId": 1, "name": "x" * (size - len(frame))}).encode()
    assert len(body) == size
    return body


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """A body sent with chunked transfer encoding, so no Content-Length announces its size."""
    for start in range(0, len(body), 16):
        yield body[start : start + 16]


@pytest.mark.parametrize(
    ("method", "body", "content_type", "expected"),
    [
        ("POST", body_of_size(100), "application/json", (200, None, None)),
        ("POST", body_of_size(101), "application/json", (413, "PAYLOAD_TOO_LARGE", None)),
        (
            "PUT",
            b'{"name": "' + b"x" * 200 + b'"}',
            "application/json",
            (413, "PAYLOAD_TOO_LARGE", None),
        ),
        ("POST", b"{" * 101, "application/json", (413, "PAYLOAD_TOO_LARGE", None)),
        ("POST", body_of_size(101), "text/plain", (415, "UNSUPPORTED_MEDIA_TYPE", None)),
    ],
)
async def test_checks_body_size(
    trusting: Proxy,
    upstream: RecordingUpstream,
    method: str,
    body: bytes,
    content_type: str,
    expected: tuple[int, str | None, str | None],
) -> None:
    """A body over server.max_body_bytes is a 413, checked after the media type."""
    key = await trusting.create_key(permissions=ALL)
    path = SHARES if method == "POST" else f"{SHARES}/abc"

    async with trusting.public.request(
        method, path, data=body, headers={**key.auth, "Content-Type": content_type}
    ) as response:
        status = response.status
        outcome = (status, None, None) if status == 200 else await error_of(response)
    assert outcome == expected
    assert len(upstream.requests) == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    ("size", "expected"), [(100, (200, None, None)), (101, (413, "PAYLOAD_TOO_LARGE", None))]
)
async def test_checks_body_size_chunked(
    trusting: Proxy, size: int, expected: tuple[int, str | None, str | None]
) -> None:
    """A chunked body with no Content-Length is held to the same limit."""
    key = await trusting.create_key(permissions=ALL)

    async with trusting.public.post(
        SHARES,
        data=chunked(body_of_size(size)),
        headers={**key.auth, "Content-Type": "application/json"},
    ) as response:
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        status = response.status
        outcome = (status, None, None) if status == 200 else await error_of(response)
    assert outcome == expected


@pytest.mark.parametrize(
    ("method", "content_type"),
    [
        ("POST", "text/plain"),
        ("POST", "application/x-www-form-urlencoded"),
        ("POST", "application/octet-stream"),
        ("POST", None),
        ("PUT", "text/json"),
        ("PATCH", "multipart/form-data; boundary=x"),
        ("PATCH", "application/jsonx"),
    ],
)
async def test_checks_unsupported_media_type(
    proxy: Proxy, upstream: RecordingUpstream, method: str, content_type: str | None
) -> None:
    """A POST, PUT or PATCH body that is not application/json is a 415."""
    key = await proxy.create_key(permissions=ALL)
    path = SHARES if method == "POST" else f"{SHARES}/abc"
    headers = key.auth if content_type is None else {**key.auth, "Content-Type": content_type}

    async with proxy.public.request(
        method,
        path,
        data=b'{"contentId": 1}',
        headers=headers,
        skip_auto_headers=["Content-Type"],
    ) as response:
        assert await error_of(response) == (415, "UNSUPPORTED_MEDIA_TYPE", None)
    assert upstream.requests == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON"],
)
async def test_checks_json_media_type_forms(proxy: Proxy, content_type: str) -> None:
    """application/json is recognised with parameters and in any case."""
    key = await proxy.create_key(permissions=ALL)
    async with proxy.public.post(
        SHARES, data=b'{"contentId": 1}', headers={**key.auth, "Content-Type": content_type}
    ) as response:
        assert response.status == 200


# --- the order of the checks --------------------------------------------------------------

PAST = "2000-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("key_fields", "method", "path", "content_type", "body", "expected"),
    [
        # Expired, outside the allowlist, without the permission: the window comes first.
        (
            {"notValidAfter": PAST, "allowedIps": ["192.0.2.1"]},
            "GET",
            f"{SHARES}/a.b",
            None,
            None,
            (401, "KEY_EXPIRED", None),
        ),
        # Outside the allowlist and without the permission: the address comes first.
        (
            {"allowedIps": ["192.0.2.1"], "permissions": {"get": True}},
            "DELETE",
            f"{SHARES}/a.b",
            None,
            None,
            (403, "IP_NOT_ALLOWED", None),
        ),
        # Without the permission, a bad LIST: the permission comes first.
        (
            {"permissions": {"get": True}},
            "GET",
            f"{SHARES}?sort=bogus",
            None,
            None,
            (403, "OPERATION_NOT_ALLOWED", None),
        ),
        # A non-admin LIST with nothing named and a bad parameter: the scope comes first.
        (
            {"permissions": {"list": True}},
            "GET",
            f"{SHARES}?sort=bogus&limit=0",
            None,
            None,
            (403, "FORBIDDEN", None),
        ),
        # Two bad parameters: sort is read before limit.
        (
            {"permissions": {"list": True}},
            "GET",
            f"{SHARES}?contents=1&limit=0&sort=bogus",
            None,
            None,
            (400, "BAD_REQUEST", "sort"),
        ),
        # A bad uuid and a bad body: the uuid comes first.
        (
            {"permissions": {"update": True}},
            "PUT",
            f"{SHARES}/a.b",
            "text/plain",
            b"{",
            (400, "BAD_REQUEST", "uuid"),
        ),
        # Not JSON, too large and unparseable: the media type comes first.
        (
            {"permissions": {"create": True}},
            "POST",
            SHARES,
            "text/plain",
            b"{" * 200,
            (415, "UNSUPPORTED_MEDIA_TYPE", None),
        ),
        # Too large and unparseable: the size comes first.
        (
            {"permissions": {"create": True}},
            "POST",
            SHARES,
            "application/json",
            b"{" * 200,
            (413, "PAYLOAD_TOO_LARGE", None),
        ),
    ],
)
async def test_checks_order(
    trusting: Proxy,
    key_fields: dict[str, Any],
    method: str,
    path: str,
    content_type: str | None,
    body: bytes | None,
    expected: tuple[int, str, str | None],
) -> None:
    """A request failing several checks gets the answer of the first, in the contract's order."""
    key = await trusting.create_key(**key_fields)
    headers = {**key.auth, "X-Forwarded-For": CLIENT}
    if content_type is not None:
        headers["Content-Type"] = content_type

    async with trusting.public.request(method, path, data=body, headers=headers) as response:
        assert await error_of(response) == expected


async def test_checks_error_carries_client_request_id(proxy: Proxy) -> None:
    """A refusal quotes the client's own X-Request-Id, in the header and the body."""
    response = await CALLS["GET"].send(proxy, {"X-Request-Id": "client-req.42"})
    assert await error_of(response) == (401, "UNAUTHORIZED", None)
    assert response.headers["X-Request-Id"] == "client-req.42"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", f"{SHARES}/abc", (405, "METHOD_NOT_ALLOWED", None)),
        ("PUT", SHARES, (405, "METHOD_NOT_ALLOWED", None)),
        ("DELETE", SHARES, (405, "METHOD_NOT_ALLOWED", None)),
        ("GET", f"{SHARES}/abc/def", (404, "NOT_FOUND", None)),
        ("GET", "/webapi/shares", (404, "NOT_FOUND", None)),
    ],
)
async def test_checks_routing_errors_have_error_body(
    proxy: Proxy,
    upstream: RecordingUpstream,
    method: str,
    path: str,
    expected: tuple[int, str, None],
) -> None:
    """A path or method that is no share operation gets the error body, and goes nowhere."""
    key = await proxy.create_key(permissions=ALL)
    async with proxy.public.request(method, path, headers=key.auth) as response:
        assert await error_of(response) == expected
    assert upstream.requests == []
