"""How client connections are read: a deadline for each request, and JSON for unparseable ones.

aiohttp's server has no timeout for reading a request: a client that sends its
headers or its body a byte at a time holds its connection, and the memory and
file descriptor behind it, for as long as it likes. Here every request must
arrive whole, head and body, within `server.read_timeout_s` of its first byte
(on a new connection, of the connection being opened). One timer handle per
connection watches that deadline; it is moved forward lazily, not cancelled and
created again for each request, so a busy keep-alive connection costs a timer
about once per read_timeout_s.

Requests aiohttp cannot parse (bad bytes, lines too long, too many headers)
are answered here too, since they never reach the applications' middlewares.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from gateway.errors import ApiError, code_for, error_body, new_request_id
from gateway.log import SERVER_LOG

log = logging.getLogger(SERVER_LOG)

IDLE_TIMEOUT_S = 75.0
"""How long a keep-alive connection may wait, idle, for its next request.

aiohttp's default is an hour. 75 s outlasts the idle time of common client
pools, so a client rarely sends on a connection the gateway is closing.
"""


class RequestTimedOut(ApiError, TimeoutError):
    """The client did not send its request's body within server.read_timeout_s.

    A TimeoutError too, so that aiohttp, draining the unread body after the
    answer, takes it as the end of the connection rather than a fault.
    """


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler with a read deadline and JSON answers to bad HTTP."""

    __slots__ = ("_clock", "_read_timeout_s", "_reading", "_started", "_timer")

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        read_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._clock = loop
        self._read_timeout_s = read_timeout_s
        # When the request now arriving began; None between requests.
        self._started: float | None = None
        # The body of a request whose head has arrived, while it is still arriving.
        self._reading: StreamReader | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # SECURITY: a connection that never sends a byte is held to the same deadline.
        self._begin()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reading, self._reading = self._reading, None
        if reading is not None and not reading.is_eof():
            # Set before aiohttp's own ConnectionResetError, so that the handler waiting
            # for the body refuses the request instead of failing as an internal error.
            reading.set_exception(
                ApiError(400, "BAD_REQUEST", "the client closed the connection mid-body")
            )
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._started is None and data:
            self._begin()
        super().data_received(data)

    def head_arrived(self, payload: StreamReader) -> None:
        """A request's head is parsed; it has arrived whole once its body has."""
        if payload.is_eof():
            self._arrived()
        else:
            self._reading = payload
            payload.on_eof(self._arrived)

    def _begin(self) -> None:
        self._started = self._clock.time()
        if self._timer is None:
            self._timer = self._clock.call_at(
                self._started + self._read_timeout_s, self._check_deadline
            )

    def _arrived(self) -> None:
        self._started = None
        self._reading = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._started is None:
            return  # Between requests: the next one arms the timer again.
        deadline = self._started + self._read_timeout_s
        if self._clock.time() < deadline:
            self._timer = self._clock.call_at(deadline, self._check_deadline)
            return

        reading, self._reading, self._started = self._reading, None, None
        if reading is not None:
            # The handler waiting for the body gets this error and answers 408; the
            # connection closes after it, since the rest of the body is not read.
            log.info("a request body did not arrive within %g s", self._read_timeout_s)
            reading.set_exception(
                RequestTimedOut(
                    408,
                    "REQUEST_TIMEOUT",
                    f"the request body did not arrive within {self._read_timeout_s:g} s",
                )
            )
            return
        log.info(
            "closed a connection whose request did not arrive within %g s", self._read_timeout_s
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The error body for a request that failed below the applications."""
        if request.writer.output_size > 0:
            # Part of an answer is out already: the connection can only be dropped.
            raise ConnectionError("an answer was already started")

        rid = new_request_id()
        if status == 400:
            text = "the request is not valid HTTP/1.1"
            if isinstance(exc, LineTooLong):
                text = f"the request line or a header is longer than {self.max_field_size} bytes"
        else:
            text = "internal error; quote the request id"
        # SECURITY: aiohttp's own message can quote the request's bytes, an Authorization
        # header among them, so only the kind of fault is logged, never its text.
        log.info(
            "answered %d to %s (%s), request %s", status, request.remote, type(exc).__name__, rid
        )

        response = web.json_response(
            error_body(code_for(status), text, rid), status=status, headers={"X-Request-Id": rid}
        )
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making GuardedRequestHandler connections."""

    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any,
        read_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.head_arrived(payload)
            request: web.BaseRequest = request_factory(message, payload, protocol, writer, task)
            return request

        super().__init__(handler, request_factory=make_request, **kwargs)
        self._guarded_loop = asyncio.get_running_loop()
        self._guarded_kwargs = {"read_timeout_s": read_timeout_s, **kwargs}

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._guarded_loop, **self._guarded_kwargs)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections have read deadlines and answer bad HTTP in JSON."""

    def __init__(self, app: web.Application, *, read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, access_log=None, **kwargs)
        self._read_timeout_s = read_timeout_s

    async def _make_server(self) -> web.Server:
        # The application's own server runs its startup and knows how to make its
        # requests; the guarded one takes over both, for connections of its own kind.
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            read_timeout_s=self._read_timeout_s,
            keepalive_timeout=IDLE_TIMEOUT_S,
        )
