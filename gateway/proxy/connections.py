"""Kept-alive HTTP/1.1 connections to the upstream, and the pool that lends them out.

Each connection is an asyncio protocol that parses one answer at a time with
llhttp (through httptools). The pool hands out the most recently used idle
connection, opens a new one while fewer than the limit are open, and
otherwise queues the caller until a connection comes back or closes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

# An answer larger than this is refused rather than held in memory.
MAX_ANSWER_BYTES = 64 * 1024 * 1024

# An idle connection older than this is closed rather than reused: upstreams close
# idle connections after their own keep-alive timeout, and a request sent on a
# connection the upstream is closing at that moment cannot be delivered.
IDLE_LIMIT_S = 15.0


class ConnectionFailed(Exception):
    """No answer began: refused, unreachable, reset or closed before the answer's head.

    The upstream's application cannot have acted on a request whose connection
    never opened; one closed before the answer may have, which is why only
    read-only operations are sent again after this.
    """


class AnswerBroken(Exception):
    """The answer began but was not valid HTTP, too large, or cut off mid-body."""


class AnswerTimedOut(Exception):
    """The deadline passed before the whole answer arrived."""


@dataclass(frozen=True)
class RawAnswer:
    """An answer as it came: status, header pairs as sent, the whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class UpstreamConnection(asyncio.Protocol):
    """One connection; `exchange` sends a request and waits for its whole answer."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[RawAnswer] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._head_done = False
        # The answer's length is framed (Content-Length or chunked) rather than "until close".
        self._framed = False
        self._keep_alive = False

    async def exchange(self, request: bytes, deadline: float) -> tuple[RawAnswer, bool]:
        """The answer to `request`, and whether this connection may carry another."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        answer = self._answer = loop.create_future()
        self._status, self._headers, self._body, self._size = 0, [], [], 0
        self._head_done = self._framed = self._keep_alive = False
        timer = loop.call_at(deadline, self._time_out)
        try:
            self.transport.write(request)
            return await answer, self._keep_alive
        finally:
            timer.cancel()
            self._answer = None

    def close(self) -> None:
        """Close now; an exchange in progress fails, and the connection's place is free."""
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.pool.forget(self)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes; they behave the same.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            # Bytes nobody asked for: the connection's state is unknown, so it goes.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(AnswerBroken(f"not a valid HTTP answer ({exc})"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is not None and not answer.done():
            if not self._head_done:
                reason = type(exc).__name__ if exc else "closed before answering"
                answer.set_exception(ConnectionFailed(reason))
            elif not self._framed and exc is None:
                # An answer with neither Content-Length nor chunking ends when the connection does.
                answer.set_result(self._whole())
            else:
                answer.set_exception(AnswerBroken("the answer was cut off"))
        self.pool.forget(self)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._fail(AnswerBroken(f"the answer is larger than {MAX_ANSWER_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._status, self._headers, self._head_done, self._framed = 0, [], False, False
            return
        answer = self._answer
        if answer is None or answer.done():
            # A second answer to one request: the connection cannot be trusted any more.
            self.close()
            return
        if self._status == 101 or self._parser.should_upgrade():
            self._fail(AnswerBroken("the upstream switched protocols"))
            return
        self._keep_alive = self._parser.should_keep_alive()
        answer.set_result(self._whole())

    def _whole(self) -> RawAnswer:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        return RawAnswer(self._status, self._headers, body)

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    def _time_out(self) -> None:
        self._fail(AnswerTimedOut())


@dataclass(frozen=True)
class Origin:
    """Where connections go: host, port and TLS."""

    host: str
    port: int
    tls: ssl.SSLContext | None


class ConnectionPool:
    """At most `limit` open connections to one origin; idle ones are reused newest first."""

    def __init__(self, origin: Origin, limit: int, connect_timeout_s: float) -> None:
        self.origin = origin
        self.limit = limit
        self.connect_timeout_s = connect_timeout_s
        self.open_count = 0
        self._idle: deque[UpstreamConnection] = deque()
        # Callers waiting for a connection; each gets one handed over, or None: open one.
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self._counted: set[UpstreamConnection] = set()
        self._closing = False

    async def acquire(self, deadline: float) -> tuple[UpstreamConnection, bool]:
        """A connection, and whether it is new (False: it carried requests before)."""
        if self._closing:
            raise ConnectionFailed("the gateway is shutting down")
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            if now - connection.idle_since > IDLE_LIMIT_S:
                connection.close()
                continue
            return connection, False
        if self.open_count >= self.limit:
            handed = await self._wait(loop, deadline)
            if handed is not None:
                return handed, False
        return await self._connect(deadline), True

    def release(self, connection: UpstreamConnection, reusable: bool) -> None:
        """Give a connection back after an exchange; one that may not carry another closes."""
        if not reusable or connection.closed or self._closing:
            connection.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        """A connection closed: its place may be taken by a new one."""
        if connection not in self._counted:
            return
        self._counted.discard(connection)
        self.open_count -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close every idle connection; those in use close when their exchange ends."""
        self._closing = True
        while self._idle:
            self._idle.pop().close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionFailed("the gateway is shutting down"))

    async def _wait(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> UpstreamConnection | None:
        waiter: asyncio.Future[UpstreamConnection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # A connection handed over just as the caller gave up goes back to the pool.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is not None:
                    self.release(handed, reusable=True)
                else:
                    self._pass_on_slot()
            raise
        finally:
            timer.cancel()

    def _pass_on_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, deadline: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        self.open_count += 1
        connection = UpstreamConnection(self)
        self._counted.add(connection)
        origin = self.origin
        timeout = max(0.0, min(self.connect_timeout_s, deadline - loop.time()))
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection,
                    origin.host,
                    origin.port,
                    ssl=origin.tls,
                    server_hostname=origin.host if origin.tls else None,
                ),
                timeout,
            )
        except TimeoutError:
            self.forget(connection)
            if loop.time() >= deadline:
                raise AnswerTimedOut() from None
            raise ConnectionFailed("connecting timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self.forget(connection)
            raise ConnectionFailed(type(exc).__name__) from None
        except BaseException:
            self.forget(connection)
            connection.close()
            raise
        return connection


def _expire(waiter: asyncio.Future[UpstreamConnection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(AnswerTimedOut())
