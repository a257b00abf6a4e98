"""The one client that carries allowed operations to the upstream.

It speaks HTTP/1.1 over a pool of kept-alive connections (gateway/proxy/connections.py)
rather than through a general-purpose client: the gateway sends a handful of fixed
request shapes, and building them directly costs a fraction of what a full client
spends on each request.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from multidict import CIMultiDict

from gateway.config import UpstreamSettings
from gateway.errors import ApiError
from gateway.log import UPSTREAM_LOG
from gateway.proxy.connections import (
    MAX_ANSWER_BYTES,
    AnswerBroken,
    AnswerTimedOut,
    ConnectionFailed,
    ConnectionPool,
    Origin,
    RawAnswer,
)

log = logging.getLogger(UPSTREAM_LOG)

# RFC 9110 section 7.6.1, plus the legacy ones proxies still see.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Recomputed or set by our own server for the relayed answer.
_NOT_RELAYED = HOP_BY_HOP | {b"content-length", b"date", b"server"}


class UpstreamError(ApiError):
    """The upstream could not be reached or did not answer in time."""


def unavailable(reason: str) -> UpstreamError:
    return UpstreamError(502, "UPSTREAM_UNAVAILABLE", f"the upstream is unavailable: {reason}")


def timed_out(timeout_s: float) -> UpstreamError:
    return UpstreamError(504, "UPSTREAM_TIMEOUT", f"the upstream did not answer in {timeout_s:g} s")


@dataclass(frozen=True)
class UpstreamAnswer:
    """What the upstream answered, ready to relay."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


def relayable(headers: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    """The upstream's headers without hop-by-hop ones and those Connection names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    dropped = _NOT_RELAYED | named if named else _NOT_RELAYED
    return CIMultiDict(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name.lower() not in dropped
    )


# zlib window settings for the encodings an upstream may use despite being asked not to.
_DECODABLE = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": 0}


def decoded(answer: RawAnswer) -> RawAnswer:
    """The answer with a gzip or deflate body decoded and its Content-Encoding dropped.

    The gateway asks for identity; an upstream that compresses anyway is decoded
    here, so that clients get the body their own Accept-Encoding allows.
    """
    encodings = [v.strip().lower() for n, v in answer.headers if n.lower() == b"content-encoding"]
    if len(encodings) != 1 or encodings[0] not in _DECODABLE:
        return answer
    wbits = _DECODABLE[encodings[0]]
    try:
        body = _inflate(answer.body, wbits)
    except zlib.error:
        if wbits:
            raise AnswerBroken("the gzip body does not decode") from None
        # "deflate" is meant as zlib-wrapped, but some servers send the raw stream.
        try:
            body = _inflate(answer.body, -zlib.MAX_WBITS)
        except zlib.error:
            raise AnswerBroken("the deflate body does not decode") from None
    headers = [(n, v) for n, v in answer.headers if n.lower() != b"content-encoding"]
    return RawAnswer(answer.status, headers, body)


def _inflate(data: bytes, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits or zlib.MAX_WBITS)
    # SECURITY: a small compressed body can expand enormously; stop at the answer limit.
    body = inflater.decompress(data, MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise AnswerBroken(f"the decoded answer is larger than {MAX_ANSWER_BYTES} bytes")
    return body


def _origin(base_url: str) -> tuple[Origin, str, str]:
    """Where to connect, the Host header, and the path prefix of a base URL."""
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    default_port = port == (443 if tls else 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if default_port else f"{shown}:{port}"
    context = ssl.create_default_context() if tls else None
    return Origin(host, port, context), host_header, parts.path.rstrip("/")


def _header_value(name: str, value: str) -> str:
    # SECURITY: a line break in a value would let it forge headers or a second request.
    if "\r" in value or "\n" in value or "\0" in value:
        raise ApiError(400, "BAD_REQUEST", f"{name}: holds a line break", field=name)
    return value


class UpstreamClient:
    """Kept-alive connections to the upstream, with its credential and timeouts."""

    def __init__(self, settings: UpstreamSettings, base_url: str, api_key: str) -> None:
        self.settings = settings
        origin, host_header, self._prefix = _origin(base_url)
        self._pool = ConnectionPool(origin, settings.max_connections, settings.connect_timeout_s)
        # The part of every request head that never changes, the upstream's key included.
        self._fixed = (
            f"Host: {host_header}\r\n"
            f"Authorization: Bearer {api_key}\r\n"
            "Accept: application/json\r\n"
            "Accept-Encoding: identity\r\n"
        )
        self._open = False

    @property
    def open_connections(self) -> int:
        """Connections open to the upstream now, idle and in use."""
        return self._pool.open_count

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        """Close idle connections; requests in flight finish on theirs, which then close."""
        self._open = False
        self._pool.close()

    def _request(
        self, method: str, path: str, query: str, body: bytes | None, headers: Mapping[str, str]
    ) -> bytes:
        target = self._prefix + path + (f"?{query}" if query else "")
        lines = [f"{method} {target} HTTP/1.1\r\n", self._fixed]
        for name, value in headers.items():
            lines.append(f"{name}: {_header_value(name, value)}\r\n")
        if body is not None:
            lines.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        lines.append("\r\n")
        # aiohttp decodes what clients send as UTF-8 with surrogate escapes; this gives
        # back the very bytes they sent. The target holds only what its parser accepted.
        head = "".join(lines).encode("utf-8", errors="surrogateescape")
        return head + body if body else head

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes | None = None,
        headers: Mapping[str, str],
        retry: bool,
    ) -> UpstreamAnswer:
        """Send one request; retry=True allows resending after a connection failure."""
        if not self._open:
            raise unavailable("the gateway is shutting down")
        request = self._request(method, path, query, body, headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s

        attempts = 1 + (self.settings.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                raw = await self._exchange(request, deadline)
            except ConnectionFailed as exc:
                log.warning("upstream %s %s failed (attempt %d): %s", method, path, attempt, exc)
                if attempt == attempts:
                    raise unavailable(str(exc)) from None
                continue
            except AnswerTimedOut:
                log.warning("upstream %s %s timed out", method, path)
                raise timed_out(self.settings.timeout_s) from None
            except AnswerBroken as exc:
                # The answer began and then broke: never resent, the request may have acted.
                log.warning("upstream %s %s broke off: %s", method, path, exc)
                raise unavailable(str(exc)) from None
            try:
                raw = decoded(raw)
            except AnswerBroken as exc:
                log.warning("upstream %s %s: %s", method, path, exc)
                raise unavailable(str(exc)) from None
            return UpstreamAnswer(raw.status, relayable(raw.headers), raw.body)
        raise unavailable("no attempt made")  # pragma: no cover - the loop always returns

    async def _exchange(self, request: bytes, deadline: float) -> RawAnswer:
        connection, _ = await self._pool.acquire(deadline)
        reusable = False
        try:
            answer, reusable = await connection.exchange(request, deadline)
        finally:
            # Whatever broke an exchange, its connection is in an unknown state: it goes.
            self._pool.release(connection, reusable)
        return answer
