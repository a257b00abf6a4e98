"""The one pooled client that carries allowed operations to the upstream."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import UpstreamSettings
from gateway.errors import ApiError
from gateway.log import UPSTREAM_LOG

log = logging.getLogger(UPSTREAM_LOG)

# RFC 9110 section 7.6.1, plus the legacy ones proxies still see.
HOP_BY_HOP = frozenset(
    {
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
)
# Recomputed or set by our own server for the relayed answer.
_NOT_RELAYED = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}

# Connection failures: refused, reset, or closed before an answer began. Only read-only
# operations are sent again after one, since a write may already have taken effect.
# ClientOSError covers ClientConnectorError (refused, unreachable) and resets.
_CONNECTION_FAILURES = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)


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


def relayable(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream's headers without hop-by-hop ones and those Connection names."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    return CIMultiDict(
        (name, value)
        for name, value in headers.items()
        if name.lower() not in _NOT_RELAYED and name.lower() not in named
    )


class UpstreamClient:
    """Keep-alive pool to the upstream, with its credential and timeouts."""

    def __init__(self, settings: UpstreamSettings, base_url: str, api_key: str) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self._auth = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=self.settings.timeout_s, sock_connect=self.settings.connect_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )
        # aiohttp resends GET, PUT and DELETE once by itself after a connection failure.
        # The contract allows resending GET and LIST only, upstream.retries times, so ours
        # must be the only retry. aiohttp has no public switch; this private attribute is
        # the one its own test client sets. Notes: a later aiohttp that renames it would
        # bring the double send back silently; tests/proxy/test_upstream_faults.py counts
        # the connections and would fail.
        self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

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
        if self._session is None:
            raise unavailable("the gateway is shutting down")
        url = self.base_url + path + (f"?{query}" if query else "")
        sent = {**headers, "Authorization": self._auth}
        if body is not None:
            sent["Content-Type"] = "application/json"

        attempts = 1 + (self.settings.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                async with self._session.request(
                    method, url, data=body, headers=sent, allow_redirects=False
                ) as response:
                    payload = await response.read()
                    return UpstreamAnswer(response.status, relayable(response.headers), payload)
            except _CONNECTION_FAILURES as exc:
                log.warning("upstream %s %s failed (attempt %d): %s", method, path, attempt, exc)
                if attempt == attempts:
                    raise unavailable(type(exc).__name__) from None
            except TimeoutError:
                log.warning("upstream %s %s timed out", method, path)
                raise timed_out(self.settings.timeout_s) from None
            except (aiohttp.ClientError, OSError) as exc:
                # A reset or broken answer after the request was sent: never resent.
                log.warning("upstream %s %s broke off: %s", method, path, exc)
                raise unavailable(type(exc).__name__) from None
        raise unavailable("no attempt made")  # pragma: no cover - the loop always returns
