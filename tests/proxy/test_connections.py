"""Client connections: slow clients are cut off, requests that are not HTTP get the error body."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.proxy.wire import ALL, SHARES, NewKey, Proxy, StartProxy
from tests.raw_http import RawAnswer, parse_answer
from tests.upstreams import RecordingUpstream

READ_TIMEOUT_S = 0.5
# Long enough that a cut-off connection ends well within it, whatever the machine's load.
WAIT_S = 10.0


@pytest.fixture
async def guarded(start_proxy: StartProxy, upstream: RecordingUpstream) -> Proxy:
    """A gateway that gives each request READ_TIMEOUT_S to arrive."""
    return await start_proxy(
        upstream=upstream.config(timeout_s=10), server={"read_timeout_s": READ_TIMEOUT_S}
    )


@pytest.fixture
async def key(guarded: Proxy) -> NewKey:
    return await guarded.create_key(permissions=ALL, admin=True)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@asynccontextmanager
async def connection(
    url: str,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    try:
        yield reader, writer
    finally:
        writer.close()


def head(method: str, path: str, key: NewKey, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", f"Authorization: Bearer {key.value}"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval_s: float) -> int:
    """Send one byte at a time; how many went out before the gateway closed the connection."""
    for sent, byte in enumerate(data):
        if writer.transport.is_closing():
            return sent
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return sent
        await asyncio.sleep(interval_s)
    return len(data)


async def answer_of(reader: asyncio.StreamReader) -> RawAnswer:
    """Read until the gateway closes the connection, and parse what came."""
    return parse_answer(await asyncio.wait_for(reader.read(), WAIT_S))


async def closed_without_answer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), WAIT_S) == b""
    except ConnectionResetError:
        return True


async def test_connections_slow_head_is_cut_off(guarded: Proxy, key: NewKey) -> None:
    """Headers sent a byte at a time are cut off, with no answer, long before they end."""
    request = head("GET", f"{SHARES}/abc", key, "X-Padding: " + "p" * 200)
    async with connection(guarded.gateway.public_url) as (reader, writer):
        sender = asyncio.create_task(trickle(writer, request, 0.02))

        assert await closed_without_answer(reader)
        sent = await sender
    assert sent < len(request)


async def test_connections_silent_connection_is_closed(guarded: Proxy) -> None:
    """A connection that never sends a byte is closed too, on both listeners."""
    for url in (guarded.gateway.public_url, guarded.gateway.admin_url):
        async with connection(url) as (reader, _):
            assert await closed_without_answer(reader)


async def test_connections_slow_body_gets_408(
    guarded: Proxy, key: NewKey, upstream: RecordingUpstream
) -> None:
    """A body sent a byte at a time gets 408 in the error body, then the connection closes."""
    body = json.dumps({"contentId": 1, "description": "d" * 200}).encode()
    request = head(
        "POST", SHARES, key, "Content-Type: application/json", f"Content-Length: {len(body)}"
    )
    async with connection(guarded.gateway.public_url) as (reader, writer):
        writer.write(request)
        sender = asyncio.create_task(trickle(writer, body, 0.02))

        answer = await answer_of(reader)
        sent = await sender

    assert answer.status == 408
    assert json.loads(answer.body) == {
        "error": "REQUEST_TIMEOUT",
        "message": f"the request body did not arrive within {READ_TIMEOUT_S:g} s",
        "requestId": answer.header("X-Request-Id"),
    }
    assert sent < len(body)
    assert upstream.requests == []
    assert (await guarded.key(key.id))["deniedCount"] == 1


async def test_connections_slow_admin_body_gets_408(guarded: Proxy) -> None:
    """The admin listener holds its bodies to the same deadline."""
    token = guarded.admin.headers["Authorization"]
    body = json.dumps({"name": "slow", "description": "d" * 200}).encode()
    request = (
        "POST /admin/api/keys HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    async with connection(guarded.gateway.admin_url) as (reader, writer):
        writer.write(request)
        sender = asyncio.create_task(trickle(writer, body, 0.02))

        answer = await answer_of(reader)
        await sender

    assert (answer.status, json.loads(answer.body)["error"]) == (408, "REQUEST_TIMEOUT")
    async with guarded.admin.get("/admin/api/keys") as response:
        assert [k["name"] for k in (await response.json())["keys"]] == []


async def test_connections_request_in_parts_within_the_deadline(
    guarded: Proxy, key: NewKey, upstream: RecordingUpstream
) -> None:
    """A request that arrives in parts, but whole within the deadline, is served."""
    body = b'{"contentId": 1}'
    request = head(
        "POST", SHARES, key, "Content-Type: application/json", f"Content-Length: {len(body)}"
    )
    async with connection(guarded.gateway.public_url) as (reader, writer):
        for part in (request[:10], request[10:40], request[40:], body[:5], body[5:]):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        status_line = await asyncio.wait_for(reader.readline(), WAIT_S)

    assert status_line.startswith(b"HTTP/1.1 200")
    assert [r.body for r in upstream.requests] == [body]


async def test_connections_slow_upstream_is_not_a_slow_client(
    guarded: Proxy, key: NewKey, upstream: RecordingUpstream
) -> None:
    """The deadline covers reading the request only: a slow upstream answer still arrives."""
    upstream.hold()
    async with connection(guarded.gateway.public_url) as (reader, writer):
        writer.write(head("GET", f"{SHARES}/abc", key))
        await upstream.requests_arrived(1)
        await asyncio.sleep(READ_TIMEOUT_S * 3)
        upstream.release()
        status_line = await asyncio.wait_for(reader.readline(), WAIT_S)

    assert status_line.startswith(b"HTTP/1.1 200")


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The status line and body of one answer on a kept-alive connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head.split(b"\r\n")[0], await reader.readexactly(length)


async def test_connections_idle_keep_alive_is_not_a_slow_request(
    guarded: Proxy, key: NewKey, upstream: RecordingUpstream
) -> None:
    """Time idle between two requests on one connection does not count against the next."""
    async with connection(guarded.gateway.public_url) as (reader, writer):
        writer.write(head("GET", f"{SHARES}/a", key))
        first = await read_answer(reader)
        await asyncio.sleep(READ_TIMEOUT_S * 3)
        writer.write(head("GET", f"{SHARES}/b", key))
        second = await read_answer(reader)

    assert first == second == (b"HTTP/1.1 200 OK", b'{"ok": true}')
    assert [r.path for r in upstream.requests] == [f"{SHARES}/a", f"{SHARES}/b"]


async def test_connections_many_slow_clients_then_normal_service(
    guarded: Proxy, key: NewKey
) -> None:
    """Fifty connections trickling headers are all cut off, and the gateway serves on."""
    async with asyncio.timeout(WAIT_S * 2):
        streams = [
            await asyncio.open_connection("127.0.0.1", port_of(guarded.gateway.public_url))
            for _ in range(50)
        ]
        for _, writer in streams:
            writer.write(b"GET /webapi/share/abc HTTP/1.1\r\nHost: g")
        closed = await asyncio.gather(*(closed_without_answer(reader) for reader, _ in streams))
        for _, writer in streams:
            writer.close()

    assert closed == [True] * 50
    async with guarded.public.get(f"{SHARES}/abc", headers=key.auth) as response:
        assert response.status == 200


# --- requests that are not HTTP ---------------------------------------------------------------

NOT_HTTP: dict[str, tuple[bytes, str]] = {
    "bad method": (b"G\x01T / HTTP/1.1\r\n\r\n", "the request is not valid HTTP/1.1"),
    "bad content length": (
        b"POST /webapi/share HTTP/1.1\r\nHost: g\r\nContent-Length: abc\r\n\r\n",
        "the request is not valid HTTP/1.1",
    ),
    "raw byte in the path": (
        b"GET /webapi/share/\xff HTTP/1.1\r\nHost: g\r\n\r\n",
        "the request is not valid HTTP/1.1",
    ),
    "header too long": (
        b"GET / HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + b"k" * 9000 + b"\r\n\r\n",
        "the request line or a header is longer than 8190 bytes",
    ),
    "path too long": (
        b"GET /webapi/share/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: g\r\n\r\n",
        "the request line or a header is longer than 8190 bytes",
    ),
    "too many headers": (
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        "the request is not valid HTTP/1.1",
    ),
}


@pytest.mark.parametrize(("request_bytes", "message"), NOT_HTTP.values(), ids=NOT_HTTP.keys())
@pytest.mark.parametrize("listener", ["public", "admin"])
async def test_connections_not_http_gets_the_error_body(
    guarded: Proxy, listener: str, request_bytes: bytes, message: str
) -> None:
    """What aiohttp cannot parse is a 400 in the JSON error body, not its text page."""
    url = guarded.gateway.public_url if listener == "public" else guarded.gateway.admin_url
    async with connection(url) as (reader, writer):
        writer.write(request_bytes)
        answer = await answer_of(reader)

    assert answer.status == 400
    assert answer.header("Content-Type") == "application/json; charset=utf-8"
    assert json.loads(answer.body) == {
        "error": "BAD_REQUEST",
        "message": message,
        "requestId": answer.header("X-Request-Id"),
    }


async def test_connections_not_http_logs_no_request_bytes(
    guarded: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The log names the fault, never the bytes: they may hold a key."""
    caplog.set_level(logging.INFO, logger="gateway.server")
    secret = b"cfeTHISMUSTNOTBELOGGED"
    async with connection(guarded.gateway.public_url) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nAuthorization: Bearer " + secret + b"\x01\r\n\r\n")
        answer = await answer_of(reader)

    assert answer.status == 400
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.server"]
    assert len(logged) == 1 and logged[0].startswith("answered 400 to 127.0.0.1 ("), logged
    assert secret.decode() not in caplog.text


@pytest.mark.parametrize("listener", ["public", "admin"])
async def test_connections_client_gone_mid_body_is_no_internal_error(
    guarded: Proxy,
    key: NewKey,
    upstream: RecordingUpstream,
    caplog: pytest.LogCaptureFixture,
    listener: str,
) -> None:
    """A client that closes halfway through its body is refused, not logged as a 500."""
    caplog.set_level(logging.INFO, logger="gateway")
    if listener == "public":
        url, path, auth = guarded.gateway.public_url, SHARES, f"Bearer {key.value}"
    else:
        url, path = guarded.gateway.admin_url, "/admin/api/keys"
        auth = guarded.admin.headers["Authorization"]
    async with connection(url) as (_, writer):
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: g\r\nAuthorization: {auth}\r\n"
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"contentId"'.encode()
        )
        await writer.drain()
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)

    statuses = [getattr(r, "status", None) for r in caplog.records if r.name == "gateway.access"]
    assert statuses == [400]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert upstream.requests == []
    async with guarded.public.get(f"{SHARES}/abc", headers=key.auth) as response:
        assert response.status == 200
