"""Upstream servers for the request-path tests: one that records, and ones that misbehave.

Each server runs its own event loop in a daemon thread. It keeps answering while a
test blocks (waiting for a subprocess, say), and it never shares a loop with the
gateway under test, so a stuck upstream cannot stall the gateway by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")

HOST = "127.0.0.1"
UPSTREAM_KEY = "upstream-secret-key-123"
"""The credential the gateway under test holds for its upstream."""


class _LoopThread:
    """An event loop running in a daemon thread, and a way to run coroutines on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class Upstream:
    """A server on a free loopback port in a thread of its own; use it as a context manager."""

    def __init__(self) -> None:
        self.port = 0
        self._thread: _LoopThread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def config(self, **settings: object) -> dict[str, object]:
        """The gateway's `upstream` settings pointing here."""
        return {"url": self.url, "api_key": UPSTREAM_KEY, **settings}

    def start(self) -> Self:
        self._thread = _LoopThread(type(self).__name__)
        self.port = self._thread.run(self._start())
        return self

    def stop(self) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.run(self._stop())
            thread.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run a callback on the server's loop (to touch loop-bound state safely)."""
        assert self._thread is not None
        self._thread.loop.call_soon_threadsafe(callback)

    async def _start(self) -> int:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError


# --- the recording upstream ---------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request as the upstream received it."""

    method: str
    path: str
    query: str
    """The query string exactly as it arrived, percent-escapes and all."""
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of one header, in the order received."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


@dataclass(frozen=True)
class Answer:
    """What the recording upstream answers: a status, a body and extra headers."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, document: object, *headers: tuple[str, str]) -> Answer:
        return cls(status, json.dumps(document).encode(), "application/json", headers)


@dataclass
class _Gate:
    """Requests wait here while the upstream is held."""

    held: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)


class RecordingUpstream(Upstream):
    """An aiohttp server that records every request and answers what it is told to."""

    def __init__(self, answer: Answer | None = None) -> None:
        super().__init__()
        self.answer = answer or Answer()
        self.requests: list[Recorded] = []
        self._arrived = threading.Condition()
        self._runner: web.AppRunner | None = None
        self._gate: _Gate | None = None

    async def _start(self) -> int:
        self._gate = _Gate()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    async def _stop(self) -> None:
        if self._gate is not None:
            self._gate.opened.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=request.rel_url.raw_query_string,
            headers=tuple(request.headers.items()),
            body=await request.read(),
        )
        with self._arrived:
            self.requests.append(recorded)
            self._arrived.notify_all()

        assert self._gate is not None
        if self._gate.held:
            await self._gate.opened.wait()
        answer = self.answer
        response = web.Response(
            status=answer.status, body=answer.body or None, content_type=answer.content_type
        )
        for name, value in answer.headers:
            response.headers.add(name, value)
        return response

    def hold(self) -> None:
        """Keep every request from now on waiting, unanswered, until release()."""
        assert self._gate is not None
        self._gate.held = True

    def release(self) -> None:
        """Answer the requests that hold() kept waiting, and those that come after."""
        gate = self._gate
        assert gate is not None

        def open_gate() -> None:
            gate.held = False
            gate.opened.set()

        self.call_soon(open_gate)

    def wait_for_requests(self, count: int, wait_s: float = 10.0) -> list[Recorded]:
        """Block until `count` requests have arrived; all of them so far."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, wait_s):
                raise AssertionError(f"{len(self.requests)} requests arrived, expected {count}")
            return list(self.requests)

    async def requests_arrived(self, count: int, wait_s: float = 10.0) -> list[Recorded]:
        """wait_for_requests() for async tests."""
        return await asyncio.to_thread(self.wait_for_requests, count, wait_s)


# --- upstreams that misbehave, on raw sockets ------------------------------------------------


class RefusingUpstream(Upstream):
    """A port that refuses every connection: bound, so nothing else takes it, but not listening."""

    def __init__(self) -> None:
        super().__init__()
        self._socket: socket.socket | None = None

    def start(self) -> Self:
        self._socket = socket.socket()
        self._socket.bind((HOST, 0))
        self.port = self._socket.getsockname()[1]
        return self

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


Behaviour = Callable[
    ["ScriptedUpstream", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]
]
"""What a scripted upstream does with one connection."""


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 request with a Content-Length body (or none); its raw bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


def http_response(
    body: bytes = b'{"ok": true}', status: str = "200 OK", *headers: str, length: int | None = None
) -> bytes:
    """An HTTP/1.1 answer that closes its connection, so each request has one of its own."""
    lines = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"Content-Length: {len(body) if length is None else length}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer gets a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def answer(body: bytes = b'{"ok": true}', status: str = "200 OK", *headers: str) -> Behaviour:
    """Read the request, send a whole answer, close."""

    async def behave(
        server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(http_response(body, status, *headers))
        await writer.drain()

    return behave


def answer_bytes(data: bytes) -> Behaviour:
    """Read the request and send these bytes as the answer, whatever they hold, then close."""

    async def behave(
        server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(data)
        await writer.drain()

    return behave


async def close_without_answer(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read the request, then close the connection cleanly without a byte of answer."""
    await read_request(reader)


async def never_answer(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read the request and keep the connection open, silent, until the server stops."""
    await read_request(reader)
    await server.stopping.wait()


async def reset_mid_response(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Send the status line, some headers and part of the body, then reset."""
    await read_request(reader)
    writer.write(http_response(b'{"shares": [{"id"', length=100))
    await writer.drain()
    reset(writer)


async def reset_without_answer(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read the request, then reset the connection before a byte of answer."""
    await read_request(reader)
    reset(writer)


async def reset_mid_headers(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Send the status line and half a header, then reset."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
    await writer.drain()
    reset(writer)


async def truncate_body(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Promise 100 bytes of body, send 10, and close cleanly."""
    await read_request(reader)
    writer.write(http_response(b'{"shares":', length=100))
    await writer.drain()


async def answer_garbage(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer with bytes that are not HTTP."""
    await read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()


def trickle(body: bytes, interval_s: float) -> Behaviour:
    """Send the headers at once, then the body one byte every `interval_s`."""

    async def behave(
        server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(http_response(b"", length=len(body)))
        await writer.drain()
        for byte in body:
            if server.stopping.is_set():
                return
            await asyncio.sleep(interval_s)
            writer.write(bytes([byte]))
            await writer.drain()

    return behave


class ScriptedUpstream(Upstream):
    """A raw asyncio server; connection n gets the n-th behaviour, and the last repeats."""

    def __init__(self, *script: Behaviour) -> None:
        super().__init__()
        assert script, "a scripted upstream needs at least one behaviour"
        self.script = script
        self.connections = 0
        self.stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _start(self) -> int:
        self.stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._connected, HOST, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self.script[min(self.connections, len(self.script) - 1)]
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await behaviour(self, reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # The gateway gave up on this connection first.
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
