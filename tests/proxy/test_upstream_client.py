"""The upstream client on the wire: keep-alive, framing, sizes, limits and stale connections."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from gateway.config import UpstreamSettings
from gateway.proxy.connections import MAX_ANSWER_BYTES
from gateway.proxy.upstream import UpstreamClient, UpstreamError
from tests.upstreams import HOST, Upstream, read_request

# What the server does with one request: the bytes to send back, and whether to close after.
Reply = Callable[[bytes], tuple[bytes, bool]]
SHARE = b'{"id": 1, "uuid": "abc"}'


def keep_alive(body: bytes = SHARE, status: str = "200 OK", *headers: str) -> Reply:
    """A whole answer with Content-Length, keeping the connection open."""
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    head.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    return lambda request: (raw, False)


def raw_reply(data: bytes, close: bool = False) -> Reply:
    """These bytes, whatever they are, then close or not."""
    return lambda request: (data, close)


def hang_up(request: bytes) -> tuple[bytes, bool]:
    """Read the request and close without a byte of answer, like a keep-alive timeout."""
    return b"", True


@dataclass
class KeepAliveUpstream(Upstream):
    """Many requests a connection; request n gets reply n (the last one repeats)."""

    replies: list[Reply] = field(default_factory=list)
    # Seconds to wait before each answer.
    delay_s: float = 0.0
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__init__()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    request = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                reply = self.replies[min(len(self.requests), len(self.replies) - 1)]
                self.requests.append(request)
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                data, close = reply(request)
                writer.write(data)
                await writer.drain()
                if close:
                    return
        finally:
            self.open_now -= 1
            self._tasks.discard(task)
            writer.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., UpstreamClient]]:
    """Clients on the test's loop, closed at the end."""
    clients: list[UpstreamClient] = []

    def make(server: KeepAliveUpstream, **settings: object) -> UpstreamClient:
        config = {"timeout_s": 2.0, "connect_timeout_s": 1.0, **settings}
        client = UpstreamClient(UpstreamSettings(**config), server.url, "upstream-key")  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def get(client: UpstreamClient, method: str = "GET", body: bytes | None = None) -> bytes:
    await client.open()
    answer = await client.send(method, "/webapi/share/abc", body=body, headers={}, retry=True)
    assert answer.status in (200, 201), answer
    return answer.body


async def test_upstream_client_reuses_one_connection(
    connect: Callable[..., UpstreamClient],
) -> None:
    """Requests in turn share one kept-alive connection."""
    with KeepAliveUpstream([keep_alive()]) as server:
        client = connect(server)
        bodies = [await get(client) for _ in range(5)]

    assert bodies == [SHARE] * 5
    assert (server.connections, len(server.requests)) == (1, 5)
    assert client.open_connections == 1


async def test_upstream_client_connection_closed_while_idle_is_not_reused(
    connect: Callable[..., UpstreamClient],
) -> None:
    """An upstream that closes after each answer costs a new connection, never an error."""
    closing = raw_reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(SHARE), SHARE), close=True
    )
    with KeepAliveUpstream([closing]) as server:
        client = connect(server)
        for _ in range(3):
            assert await get(client) == SHARE
            await asyncio.sleep(0.05)

    assert server.connections == 3


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
async def test_upstream_client_stale_connection_retried_for_reads_only(
    connect: Callable[..., UpstreamClient], method: str, retried: bool
) -> None:
    """A kept-alive connection that drops the next request is retried once, for reads only."""
    with KeepAliveUpstream([keep_alive(), hang_up, keep_alive()]) as server:
        client = connect(server)
        assert await get(client) == SHARE
        read_only = method == "GET"
        if retried:
            answer = await client.send(method, "/x", headers={}, retry=read_only)
            assert (answer.status, answer.body) == (200, SHARE)
        else:
            with pytest.raises(UpstreamError) as refused:
                await client.send(method, "/x", body=b"{}", headers={}, retry=read_only)
            assert (refused.value.status, refused.value.code) == (502, "UPSTREAM_UNAVAILABLE")

    assert len(server.requests) == (3 if retried else 2)
    assert server.connections == (2 if retried else 1)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"9\r\n" + SHARE[:9] + b"\r\n" + b"%x\r\n" % (len(SHARE) - 9) + SHARE[9:] + b"\r\n"
            b"0\r\n\r\n",
            id="chunked",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(SHARE), SHARE),
            id="content-length",
        ),
    ],
)
async def test_upstream_client_framings_keep_the_connection(
    connect: Callable[..., UpstreamClient], raw: bytes
) -> None:
    """Chunked and Content-Length answers are read whole and the connection is reused."""
    with KeepAliveUpstream([raw_reply(raw)]) as server:
        client = connect(server)
        assert [await get(client), await get(client)] == [SHARE, SHARE]

    assert server.connections == 1


async def test_upstream_client_body_until_close(connect: Callable[..., UpstreamClient]) -> None:
    """An answer with neither length nor chunks ends with its connection, which is not reused."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + SHARE
    with KeepAliveUpstream([raw_reply(raw, close=True)]) as server:
        client = connect(server)
        assert [await get(client), await get(client)] == [SHARE, SHARE]

    assert server.connections == 2


async def test_upstream_client_large_body_whole(connect: Callable[..., UpstreamClient]) -> None:
    """A body of several megabytes arrives byte for byte."""
    body = bytes(range(256)) * (6 * 4096)
    with KeepAliveUpstream([keep_alive(body)]) as server:
        client = connect(server)
        assert await get(client) == body
        assert await get(client) == body

    assert server.connections == 1


async def test_upstream_client_refuses_an_oversized_answer(
    connect: Callable[..., UpstreamClient],
) -> None:
    """An answer past the size limit is a 502, and its connection is dropped."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1)
    chunk = b"x" * (1024 * 1024)

    def flood(request: bytes) -> tuple[bytes, bool]:
        return head + chunk * (MAX_ANSWER_BYTES // len(chunk) + 1), True

    with KeepAliveUpstream([flood]) as server:
        client = connect(server, timeout_s=10.0)
        await client.open()
        with pytest.raises(UpstreamError) as refused:
            await client.send("GET", "/x", headers={}, retry=True)

    assert (refused.value.status, refused.value.code) == (502, "UPSTREAM_UNAVAILABLE")
    assert "larger than" in refused.value.message
    assert client.open_connections == 0


async def test_upstream_client_holds_to_max_connections(
    connect: Callable[..., UpstreamClient],
) -> None:
    """Many requests at once never open more than upstream.max_connections; all are answered."""
    with KeepAliveUpstream([keep_alive()], delay_s=0.05) as server:
        client = connect(server, max_connections=3)
        bodies = await asyncio.gather(*(get(client) for _ in range(20)))

    assert bodies == [SHARE] * 20
    assert (server.connections, server.most_open) == (3, 3)


async def test_upstream_client_waiting_for_a_connection_times_out(
    connect: Callable[..., UpstreamClient],
) -> None:
    """A request that cannot get a connection before upstream.timeout_s is a 504."""
    with KeepAliveUpstream([keep_alive()], delay_s=0.6) as server:
        client = connect(server, max_connections=1, timeout_s=0.3)
        outcomes = await asyncio.gather(get(client), get(client), return_exceptions=True)

    codes = sorted(
        outcome.code if isinstance(outcome, UpstreamError) else "ok" for outcome in outcomes
    )
    assert codes == ["UPSTREAM_TIMEOUT", "UPSTREAM_TIMEOUT"]


async def test_upstream_client_skips_interim_answers(
    connect: Callable[..., UpstreamClient],
) -> None:
    """A 100 Continue before the real answer is passed over."""
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (
        len(SHARE),
        SHARE,
    )
    with KeepAliveUpstream([raw_reply(raw)]) as server:
        client = connect(server)
        await client.open()
        answer = await client.send("POST", "/x", body=b"{}", headers={}, retry=False)

    assert (answer.status, answer.body) == (201, SHARE)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
    ],
)
async def test_upstream_client_decodes_compressed_answers(
    connect: Callable[..., UpstreamClient], encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    """An upstream that compresses although asked not to is decoded for the client."""
    reply = keep_alive(compress(SHARE), "200 OK", f"Content-Encoding: {encoding}")
    with KeepAliveUpstream([reply]) as server:
        client = connect(server)
        await client.open()
        answer = await client.send("GET", "/x", headers={}, retry=True)

    assert answer.body == SHARE
    assert "Content-Encoding" not in answer.headers
    assert b"accept-encoding: identity" in server.requests[0].lower()


async def test_upstream_client_refuses_a_compression_bomb(
    connect: Callable[..., UpstreamClient],
) -> None:
    """A small gzip body that inflates past the size limit is a 502, not a memory spike."""
    bomb = gzip.compress(b"\0" * (MAX_ANSWER_BYTES + 1024))
    with KeepAliveUpstream([keep_alive(bomb, "200 OK", "Content-Encoding: gzip")]) as server:
        client = connect(server)
        await client.open()
        with pytest.raises(UpstreamError) as refused:
            await client.send("GET", "/x", headers={}, retry=True)

    assert (refused.value.status, refused.value.code) == (502, "UPSTREAM_UNAVAILABLE")


async def test_upstream_client_sends_its_own_key_and_length(
    connect: Callable[..., UpstreamClient],
) -> None:
    """The request carries the upstream key, Host, and the body's exact length."""
    with KeepAliveUpstream([keep_alive()]) as server:
        client = connect(server)
        await client.open()
        await client.send(
            "PUT", "/webapi/share/abc", body=b'{"name": "x"}', headers={}, retry=False
        )

    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "PUT /webapi/share/abc HTTP/1.1"
    assert f"Host: {HOST}:{server.port}" in lines
    assert "Authorization: Bearer upstream-key" in lines
    assert "Content-Length: 13" in lines
    assert body == b'{"name": "x"}'


async def test_upstream_client_after_close_refuses(connect: Callable[..., UpstreamClient]) -> None:
    """A closed client answers 502 and has no connection left open."""
    with KeepAliveUpstream([keep_alive()]) as server:
        client = connect(server)
        assert await get(client) == SHARE
        await client.close()
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamError) as refused:
            await client.send("GET", "/x", headers={}, retry=True)

    assert refused.value.code == "UPSTREAM_UNAVAILABLE"
    assert client.open_connections == 0
