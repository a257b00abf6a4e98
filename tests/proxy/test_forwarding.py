"""What the upstream receives for an allowed request, and what the client gets back."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import aiohttp
import pytest
from yarl import URL

from tests.proxy.wire import ALL, SHARES, NewKey, Proxy, StartProxy
from tests.upstreams import (
    UPSTREAM_KEY,
    Answer,
    Recorded,
    RecordingUpstream,
    ScriptedUpstream,
    answer_bytes,
)

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
# What the gateway itself sends upstream; no header of the client's is passed on.
SENT_UPSTREAM = {
    "host",
    "authorization",
    "x-request-id",
    "x-forwarded-for",
    "accept",
    "accept-encoding",
    "content-type",
    "content-length",
}

CALLS: dict[str, tuple[str, str, bytes | None]] = {
    "GET": ("GET", f"{SHARES}/abc-123", None),
    "LIST": ("GET", f"{SHARES}?contents=1", None),
    "CREATE": ("POST", SHARES, b'{"contentId": 1}'),
    "UPDATE-PUT": ("PUT", f"{SHARES}/abc-123", b'{"name": "renamed"}'),
    "UPDATE-PATCH": ("PATCH", f"{SHARES}/abc-123", b'{"name": "renamed"}'),
    "DELETE": ("DELETE", f"{SHARES}/abc-123", None),
}


@pytest.fixture
async def key(proxy: Proxy) -> NewKey:
    """An admin key with every permission."""
    return await proxy.create_key(permissions=ALL, admin=True)


async def call(
    proxy: Proxy,
    key: NewKey,
    name: str,
    headers: dict[str, str] | None = None,
) -> tuple[aiohttp.ClientResponse, bytes]:
    method, path, body = CALLS[name]
    sent = {**key.auth, **({"Content-Type": "application/json"} if body else {}), **(headers or {})}
    async with proxy.public.request(method, path, data=body, headers=sent) as response:
        return response, await response.read()


def only(upstream: RecordingUpstream) -> Recorded:
    """The one request the upstream received."""
    assert len(upstream.requests) == 1, upstream.requests
    return upstream.requests[0]


# --- credentials and identity -------------------------------------------------------------


@pytest.mark.parametrize("name", CALLS)
async def test_forwarding_upstream_key_replaces_client_key(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, name: str
) -> None:
    """The upstream gets the gateway's own key, once, and the client's key nowhere."""
    response, _ = await call(proxy, key, name)

    assert response.status == 200
    recorded = only(upstream)
    assert recorded.header("Authorization") == [f"Bearer {UPSTREAM_KEY}"]
    everything = " ".join(
        [recorded.path, recorded.query, recorded.body.decode()]
        + [f"{name}: {value}" for name, value in recorded.headers]
    )
    assert key.value not in everything
    assert key.value[3:-6] not in everything


@pytest.mark.parametrize("name", CALLS)
async def test_forwarding_sends_only_its_own_headers(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, name: str
) -> None:
    """Hop-by-hop headers, those Connection names and every other client header stay behind."""
    await call(
        proxy,
        key,
        name,
        {
            "Connection": "keep-alive, X-Custom",
            "X-Custom": "named in Connection",
            "Keep-Alive": "timeout=5, max=100",
            "TE": "trailers",
            "Trailer": "X-Checksum",
            "Upgrade": "h2c",
            "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
            "Proxy-Connection": "keep-alive",
            "X-Client-Header": "mine",
            "Cookie": "session=abc",
        },
    )

    recorded = only(upstream)
    assert recorded.header_names <= SENT_UPSTREAM
    assert recorded.header_names & HOP_BY_HOP == set()
    assert recorded.header("Host") == [f"127.0.0.1:{upstream.port}"]


async def test_forwarding_relays_upstream_headers_without_hop_by_hop(
    start_proxy: StartProxy,
) -> None:
    """The client gets the upstream's own headers, not its hop-by-hop ones."""
    body = b'{"id": 1}'
    raw = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close, X-Upstream-Private\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Authenticate: Basic realm=upstream\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"Trailer: X-Checksum\r\n"
        b"Upgrade: h2c\r\n"
        b"X-Upstream-Private: secret\r\n"
        b"X-Share-Trace: kept\r\n"
        b"\r\n" % len(body)
    ) + body
    with ScriptedUpstream(answer_bytes(raw)) as scripted:
        proxy = await start_proxy(upstream=scripted.config())
        key = await proxy.create_key(permissions=ALL)
        async with proxy.public.get(f"{SHARES}/abc", headers=key.auth) as response:
            received = await response.read()

    assert (response.status, received) == (200, body)
    names = {name.lower() for name in response.headers}
    assert names & (HOP_BY_HOP - {"connection"}) == set()
    assert "x-upstream-private" not in names
    assert "x-upstream-private" not in response.headers.get("Connection", "").lower()
    assert response.headers["X-Share-Trace"] == "kept"
    assert response.headers["Content-Type"] == "application/json"


async def test_forwarding_chunked_answer_relayed_whole(start_proxy: StartProxy) -> None:
    """An upstream answer in chunks reaches the client as one body with its own length."""
    raw = (
        b"HTTP/1.1 201 Created\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b'5\r\n{"id"\r\n4\r\n: 1}\r\n0\r\n\r\n'
    )
    with ScriptedUpstream(answer_bytes(raw)) as scripted:
        proxy = await start_proxy(upstream=scripted.config())
        key = await proxy.create_key(permissions=ALL)
        async with proxy.public.post(SHARES, json={"contentId": 1}, headers=key.auth) as response:
            received = await response.read()

    assert (response.status, received) == (201, b'{"id": 1}')
    assert response.headers["Content-Length"] == "9"
    assert "Transfer-Encoding" not in response.headers


async def test_forwarding_compressed_answer_relayed_decoded(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey
) -> None:
    """A gzip answer is relayed decoded, without a Content-Encoding that no longer holds."""
    document = b'{"shares": []}'
    upstream.answer = Answer(
        200, gzip.compress(document), "application/json", (("Content-Encoding", "gzip"),)
    )

    async with proxy.public.get(
        f"{SHARES}/abc", headers={**key.auth, "Accept-Encoding": "identity"}
    ) as response:
        assert (response.status, await response.read()) == (200, document)
        assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("client-req-1", True),
        ("a.b:c_d-E", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        (None, False),
    ],
)
async def test_forwarding_request_id(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, sent: str | None, kept: bool
) -> None:
    """The upstream gets the X-Request-Id the client gets back: the client's own if sane."""
    headers = {} if sent is None else {"X-Request-Id": sent}
    response, _ = await call(proxy, key, "GET", headers)

    answered = response.headers["X-Request-Id"]
    assert only(upstream).header("X-Request-Id") == [answered]
    assert (answered == sent) is kept
    assert answered


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "expected"),
    [
        ([], [], "127.0.0.1"),
        ([], ["203.0.113.7"], "127.0.0.1"),
        ([], ["203.0.113.7", "198.51.100.1"], "127.0.0.1"),
        (["127.0.0.1/32"], [], "127.0.0.1"),
        (["127.0.0.1/32"], ["203.0.113.7"], "203.0.113.7, 127.0.0.1"),
        (["127.0.0.1/32"], ["192.0.2.1, 203.0.113.7"], "192.0.2.1, 203.0.113.7, 127.0.0.1"),
        (
            ["127.0.0.1/32"],
            ["192.0.2.1", "203.0.113.7"],
            "192.0.2.1, 203.0.113.7, 127.0.0.1",
        ),
    ],
)
async def test_forwarding_x_forwarded_for(
    start_proxy: StartProxy,
    upstream: RecordingUpstream,
    trusted: list[str],
    forwarded_for: list[str],
    expected: str,
) -> None:
    """A trusted proxy's chain goes on with the peer appended; an untrusted one is dropped."""
    proxy = await start_proxy(upstream=upstream.config(), server={"trusted_proxies": trusted})
    key = await proxy.create_key(permissions=ALL)
    headers = [("X-Forwarded-For", value) for value in forwarded_for]

    async with proxy.public.get(f"{SHARES}/abc", headers=[*key.auth.items(), *headers]) as response:
        assert response.status == 200

    assert only(upstream).header("X-Forwarded-For") == [expected]


# --- the answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("CREATE", Answer.json(201, {"id": 7, "uuid": "u-7", "contentId": "1"})),
        ("GET", Answer.json(200, {"id": 7, "uuid": "u-7", "name": "é ✓"})),
        ("LIST", Answer.json(200, [{"id": 1}, {"id": 2}])),
        ("GET", Answer.json(404, {"message": "Share not found", "status": 404})),
        ("UPDATE-PUT", Answer.json(409, {"message": "conflict"})),
        ("CREATE", Answer.json(422, {"errors": [{"field": "contentId"}]})),
        ("GET", Answer.json(403, {"message": "no access to this space"})),
        ("GET", Answer.json(500, {"error": "boom", "trace": "at Share.get"})),
        ("GET", Answer(500, b"Internal Server Error", "text/plain")),
        ("LIST", Answer(503, b"<html>down for maintenance</html>", "text/html")),
        ("GET", Answer(200, b'{"weird":   [1,2 ,3]}', "application/json")),
        ("DELETE", Answer(204, b"", None)),
    ],
)
async def test_forwarding_relays_status_and_body(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, name: str, answer: Answer
) -> None:
    """Whatever the upstream answers, the client gets its status, body and media type."""
    upstream.answer = answer

    response, body = await call(proxy, key, name)

    assert (response.status, body) == (answer.status, answer.body)
    assert response.headers.get("Content-Type") == answer.content_type
    assert len(upstream.requests) == 1


async def test_forwarding_redirect_relayed_not_followed(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey
) -> None:
    """An upstream redirect goes back to the client; the gateway does not follow it."""
    upstream.answer = Answer(302, b"", None, (("Location", "https://elsewhere.example/x"),))

    async with proxy.public.get(
        f"{SHARES}/abc", headers=key.auth, allow_redirects=False
    ) as response:
        assert response.status == 302
        assert response.headers["Location"] == "https://elsewhere.example/x"
    assert len(upstream.requests) == 1


# --- method, path, query and body ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method", "path"),
    [
        ("GET", "GET", f"{SHARES}/abc-123"),
        ("LIST", "GET", SHARES),
        ("CREATE", "POST", SHARES),
        ("UPDATE-PUT", "PUT", f"{SHARES}/abc-123"),
        ("UPDATE-PATCH", "PUT", f"{SHARES}/abc-123"),
        ("DELETE", "DELETE", f"{SHARES}/abc-123"),
    ],
)
async def test_forwarding_method_and_path(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, name: str, method: str, path: str
) -> None:
    """Each operation goes upstream on its own method and path (UPDATE by default as PUT)."""
    await call(proxy, key, name)
    recorded = only(upstream)
    assert (recorded.method, recorded.path) == (method, path)


@pytest.mark.parametrize(
    ("update", "client_method", "method", "path"),
    [
        ({}, "PUT", "PUT", f"{SHARES}/abc-123"),
        ({}, "PATCH", "PUT", f"{SHARES}/abc-123"),
        (
            {"method": "POST", "path": "/webapi/share/{uuid}/update"},
            "PUT",
            "POST",
            f"{SHARES}/abc-123/update",
        ),
        (
            {"method": "POST", "path": "/webapi/share/{uuid}/update"},
            "PATCH",
            "POST",
            f"{SHARES}/abc-123/update",
        ),
        ({"method": "PATCH"}, "PUT", "PATCH", f"{SHARES}/abc-123"),
        ({"path": "/rest/shares/{uuid}/settings"}, "PATCH", "PUT", "/rest/shares/abc-123/settings"),
    ],
)
async def test_forwarding_update_route_from_config(
    start_proxy: StartProxy,
    upstream: RecordingUpstream,
    update: dict[str, str],
    client_method: str,
    method: str,
    path: str,
) -> None:
    """UPDATE goes upstream on upstream.update's method and path, the body unchanged."""
    proxy = await start_proxy(upstream=upstream.config(update=update))
    key = await proxy.create_key(permissions={"update": True})
    body = b'{"name":  "renamed", "showLabels": true}'

    async with proxy.public.request(
        client_method,
        f"{SHARES}/abc-123",
        data=body,
        headers={**key.auth, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 200

    recorded = only(upstream)
    assert (recorded.method, recorded.path, recorded.body) == (method, path, body)


async def test_forwarding_upstream_base_path(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """An upstream URL with a path is the prefix of every path sent there."""
    proxy = await start_proxy(upstream=upstream.config(url=upstream.url + "/confluence/"))
    key = await proxy.create_key(permissions=ALL)

    async with proxy.public.get(f"{SHARES}/abc", headers=key.auth) as response:
        assert response.status == 200

    assert only(upstream).path == f"/confluence{SHARES}/abc"


@pytest.mark.parametrize(
    "query",
    [
        "contents=1",
        "contents=1,2,3&spaceKeys=DEV,%20OPS&sort=name&sortOrder=desc&limit=5&offset=10",
        "spaceKeys=R%26D",
        "spaceKeys=C%2B%2B",
        "spaceKeys=A%23B&limit=5",
        "spaceKeys=%C3%A9t%C3%A9",
        "spaceKeys=a%3Db",
        "spaceKeys=100%2525",
        "contents=1&contents=2&unknown=x",
        "contents=1&flag",
        "spaceKeys=A+B",
    ],
)
async def test_forwarding_list_query(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, query: str
) -> None:
    """LIST's query string reaches the upstream meaning what the client sent."""
    async with proxy.public.get(
        URL(f"{SHARES}?{query}", encoded=True), headers=key.auth
    ) as response:
        assert response.status == 200

    recorded = only(upstream)
    assert parse_qsl(recorded.query, keep_blank_values=True) == parse_qsl(
        query, keep_blank_values=True
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"contentId": 1}',
        b'{ "contentId" : "42" ,\n  "name":"\xc3\xa9t\xc3\xa9 \\u00e9" }',
        b'{"contentId": 9223372036854775807, "expiration": 1893456000000}',
        b'{"contentId": "1", "selectedUsersConfig": {"list": [{"email": "a@b.c"}]}}',
        b'\t{"contentId": 1}\r\n',
    ],
)
async def test_forwarding_body_unchanged(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, body: bytes
) -> None:
    """A CREATE body reaches the upstream byte for byte, as application/json."""
    async with proxy.public.post(
        SHARES, data=body, headers={**key.auth, "Content-Type": "application/json; charset=utf-8"}
    ) as response:
        assert response.status == 200

    recorded = only(upstream)
    assert recorded.body == body
    assert recorded.header("Content-Type") == ["application/json"]
    assert recorded.header("Content-Length") == [str(len(body))]


async def test_forwarding_chunked_body_sent_with_length(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey
) -> None:
    """A body the client sent in chunks goes upstream whole, with a Content-Length."""
    body = json.dumps({"contentId": 1, "description": "d" * 500}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64):
            yield body[start : start + 64]

    async with proxy.public.post(
        SHARES, data=chunks(), headers={**key.auth, "Content-Type": "application/json"}
    ) as response:
        assert response.status == 200

    recorded = only(upstream)
    assert recorded.body == body
    assert recorded.header("Content-Length") == [str(len(body))]
    assert recorded.header("Transfer-Encoding") == []


@pytest.mark.parametrize("name", ["GET", "LIST", "DELETE"])
async def test_forwarding_no_body_for_bodiless_operations(
    proxy: Proxy, upstream: RecordingUpstream, key: NewKey, name: str
) -> None:
    """GET, LIST and DELETE go upstream without a body, even if the client sent one."""
    method, path, _ = CALLS[name]
    async with proxy.public.request(
        method,
        path,
        data=b'{"contentId": 1}',
        headers={**key.auth, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 200

    recorded = only(upstream)
    assert recorded.body == b""
    assert recorded.header("Content-Type") == []
