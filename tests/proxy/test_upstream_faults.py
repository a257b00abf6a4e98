"""An upstream that refuses, stalls, resets or garbles: the answers, retries and recovery."""

from __future__ import annotations

import time

import pytest

from tests.proxy.wire import ALL, SHARES, NewKey, Proxy, StartProxy, error_of
from tests.upstreams import (
    Behaviour,
    RefusingUpstream,
    ScriptedUpstream,
    answer,
    answer_bytes,
    answer_garbage,
    close_without_answer,
    never_answer,
    reset_mid_headers,
    reset_mid_response,
    reset_without_answer,
    trickle,
    truncate_body,
)

TIMEOUT_S = 0.3
CALLS: dict[str, tuple[str, str, bytes | None]] = {
    "GET": ("GET", f"{SHARES}/abc", None),
    "LIST": ("GET", f"{SHARES}?contents=1", None),
    "CREATE": ("POST", SHARES, b'{"contentId": 1}'),
    "UPDATE": ("PUT", f"{SHARES}/abc", b'{"name": "renamed"}'),
    "DELETE": ("DELETE", f"{SHARES}/abc", None),
}
UNAVAILABLE = (502, "UPSTREAM_UNAVAILABLE", None)
TIMED_OUT = (504, "UPSTREAM_TIMEOUT", None)


async def send(proxy: Proxy, key: NewKey, name: str) -> tuple[int, str | None, str | None]:
    """Status, and error code and field for a refusal, of one share operation."""
    method, path, body = CALLS[name]
    headers = {**key.auth, "Content-Type": "application/json"} if body else key.auth
    async with proxy.public.request(method, path, data=body, headers=headers) as response:
        if response.status < 400:
            await response.read()
            return response.status, None, None
        return await error_of(response)


async def gateway_for(
    start_proxy: StartProxy, url: str, **upstream: object
) -> tuple[Proxy, NewKey]:
    proxy = await start_proxy(
        upstream={
            "url": url,
            "api_key": "upstream-secret-key-123",
            "timeout_s": TIMEOUT_S,
            "connect_timeout_s": TIMEOUT_S,
            **upstream,
        }
    )
    return proxy, await proxy.create_key(permissions=ALL, admin=True)


async def healthy(proxy: Proxy) -> bool:
    async with proxy.public.get("/healthz") as response:
        return response.status == 200


@pytest.mark.parametrize("name", CALLS)
async def test_upstream_faults_refused(start_proxy: StartProxy, name: str) -> None:
    """An upstream that refuses connections is a 502, and the gateway stays up."""
    with RefusingUpstream() as refusing:
        proxy, key = await gateway_for(start_proxy, refusing.url)

        assert await send(proxy, key, name) == UNAVAILABLE
        assert await healthy(proxy)
        assert await send(proxy, key, name) == UNAVAILABLE


FAULTS: dict[str, tuple[Behaviour, tuple[int, str, None], int]] = {
    # The behaviour, the answer, and how many times a read is sent to it.
    "closed without answer": (close_without_answer, UNAVAILABLE, 2),
    "reset before answer": (reset_without_answer, UNAVAILABLE, 2),
    "reset mid headers": (reset_mid_headers, UNAVAILABLE, 2),
    "reset mid body": (reset_mid_response, UNAVAILABLE, 1),
    "truncated body": (truncate_body, UNAVAILABLE, 1),
    "not http": (answer_garbage, UNAVAILABLE, 1),
    "never answers": (never_answer, TIMED_OUT, 1),
    "body too slow": (trickle(b'{"shares": []}', 0.2), TIMED_OUT, 1),
}


@pytest.mark.parametrize(("fault", "expected", "sent"), FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("name", ["CREATE", "UPDATE", "DELETE"])
async def test_upstream_faults_then_recovers(
    start_proxy: StartProxy,
    name: str,
    fault: Behaviour,
    expected: tuple[int, str, None],
    sent: int,
) -> None:
    """A write the upstream breaks off gets 502 or 504, once; the next request is served."""
    with ScriptedUpstream(fault, answer(b'{"id": 1}', "201 Created")) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url)

        started = time.monotonic()
        assert await send(proxy, key, name) == expected
        elapsed = time.monotonic() - started
        assert scripted.connections == 1

        assert await healthy(proxy)
        assert await send(proxy, key, "GET") == (201, None, None)
        assert scripted.connections == 2
    assert elapsed < TIMEOUT_S + 2


@pytest.mark.parametrize(("fault", "expected", "sent"), FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("name", ["GET", "LIST"])
async def test_upstream_faults_reads(
    start_proxy: StartProxy,
    name: str,
    fault: Behaviour,
    expected: tuple[int, str, None],
    sent: int,
) -> None:
    """A read gets 502 or 504 too; it is sent again only after a connection failure."""
    with ScriptedUpstream(fault) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url)

        started = time.monotonic()
        assert await send(proxy, key, name) == expected
        elapsed = time.monotonic() - started

        assert scripted.connections == sent
        assert await healthy(proxy)
    assert elapsed < TIMEOUT_S + 2


@pytest.mark.parametrize("fault", [never_answer, trickle(b'{"shares": []}', 0.2)])
@pytest.mark.parametrize("name", ["GET", "CREATE"])
async def test_upstream_faults_timeout_waits_for_timeout_s(
    start_proxy: StartProxy, name: str, fault: Behaviour
) -> None:
    """A silent or slow upstream is a 504 once upstream.timeout_s has passed, not before."""
    with ScriptedUpstream(fault, answer()) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url)

        started = time.monotonic()
        assert await send(proxy, key, name) == TIMED_OUT
        elapsed = time.monotonic() - started

        assert scripted.connections == 1
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 2


async def test_upstream_faults_slow_answer_within_timeout(start_proxy: StartProxy) -> None:
    """A slow answer that ends within upstream.timeout_s is relayed whole."""
    body = b'{"id": 1}'
    with ScriptedUpstream(trickle(body, 0.05)) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url, timeout_s=5)
        method, path, _ = CALLS["GET"]
        async with proxy.public.request(method, path, headers=key.auth) as response:
            assert (response.status, await response.read()) == (200, body)


ANSWERED = {
    "502 in HTML": (b"<html>bad gateway upstream</html>", "502 Bad Gateway", "text/html"),
    "503 in text": (b"maintenance until 10:00", "503 Service Unavailable", "text/plain"),
    "504 empty": (b"", "504 Gateway Timeout", "text/plain"),
    "500 in JSON": (b'{"error": "boom"}', "500 Internal Server Error", "application/json"),
    "200 not JSON": (b"\x00\xffnot json", "200 OK", "application/octet-stream"),
}


@pytest.mark.parametrize(("body", "status", "media_type"), ANSWERED.values(), ids=ANSWERED.keys())
async def test_upstream_faults_answered_errors_relayed_as_they_are(
    start_proxy: StartProxy, body: bytes, status: str, media_type: str
) -> None:
    """A 5xx or a body that is not JSON, answered by the upstream itself, reaches the client
    unchanged: it is not mistaken for the gateway's own 502 or 504."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {media_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with ScriptedUpstream(answer_bytes(head.encode() + body)) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url)
        async with proxy.public.get(f"{SHARES}/abc", headers=key.auth) as response:
            relayed = (response.status, response.content_type, await response.read())

    assert relayed == (int(status[:3]), media_type, body)


RETRIED = {"GET": True, "LIST": True, "CREATE": False, "UPDATE": False, "DELETE": False}


@pytest.mark.parametrize("first", [close_without_answer, reset_without_answer])
@pytest.mark.parametrize("name", CALLS)
async def test_upstream_faults_reads_retried_once(
    start_proxy: StartProxy, name: str, first: Behaviour
) -> None:
    """After a connection failure GET and LIST are sent again; CREATE, UPDATE, DELETE never."""
    with ScriptedUpstream(first, answer()) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url)

        outcome = await send(proxy, key, name)

        if RETRIED[name]:
            assert (outcome, scripted.connections) == ((200, None, None), 2)
        else:
            assert (outcome, scripted.connections) == (UNAVAILABLE, 1)


@pytest.mark.parametrize(("retries", "connections"), [(0, 1), (1, 2), (3, 4)])
async def test_upstream_faults_retries_setting(
    start_proxy: StartProxy, retries: int, connections: int
) -> None:
    """A read is sent 1 + upstream.retries times at most, and then it is a 502."""
    with ScriptedUpstream(close_without_answer) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url, retries=retries)

        assert await send(proxy, key, "GET") == UNAVAILABLE
        assert scripted.connections == connections


async def test_upstream_faults_count_as_usage(start_proxy: StartProxy) -> None:
    """A request that passed the checks counts as used even when the upstream fails it."""
    with ScriptedUpstream(close_without_answer, never_answer) as scripted:
        proxy, key = await gateway_for(start_proxy, scripted.url)

        assert await send(proxy, key, "CREATE") == UNAVAILABLE
        assert await send(proxy, key, "DELETE") == TIMED_OUT

        shown = await proxy.key(key.id)
    assert (shown["usageCount"], shown["deniedCount"]) == (2, 0)
