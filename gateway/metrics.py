"""Prometheus metrics: one registry per gateway, counted cheaply on the request path.

Every series the request path touches is resolved once (`.labels(...)` is
looked up in a dict of children), so counting a request costs a dict lookup
and an increment. Nothing here ever sees a key value, an admin token or the
upstream key: labels are operations, statuses, error codes and, only when
`metrics.per_key` is on, key ids.

With `server.workers` above one, each worker writes its series to files in
a directory the supervisor made for the run (prometheus-client's
multiprocess mode, chosen by PROMETHEUS_MULTIPROC_DIR in the worker's
environment), and a scrape answered by any worker merges every worker's
files.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import prometheus_client
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gateway.log import ACCESS_KEY, ACCESS_OPERATION
from gateway.store.base import KeyCounts

PREFIX = "share_gateway_"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic Prometheus text format, which every Prometheus version reads."""

NO_OPERATION = "none"
"""The operation label of requests that are not share operations (/healthz, unknown paths)."""

# Loopback upstreams answer in well under a millisecond; the default upstream timeout is 10 s.
UPSTREAM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

LAST_FLUSH = PREFIX + "usage_last_flush_timestamp_seconds"
FLUSH_LAG = PREFIX + "usage_flush_lag_seconds"
KEYS = PREFIX + "keys"

# In the text format a counter's `_created` time is one more series beside each series, which
# doubles what a scrape carries and is of no use to a graph or an alert. The switch is
# process-wide; nothing else in the gateway exposes metrics.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Tally(Protocol):
    """One counter series: what the key cache counts its hits and misses with."""

    def inc(self, amount: float = 1) -> None: ...


class _Uncounted:
    def inc(self, amount: float = 1) -> None:
        """Count nothing: for a cache that no gateway's metrics watch (the CLI's)."""


NOT_COUNTED: Tally = _Uncounted()


class FlushMetrics:
    """What the usage counter reports about its batched writes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._duration = Histogram(
            PREFIX + "usage_flush_duration_seconds",
            "Time taken by each batched write of usage counts to the store, failed ones too.",
            buckets=FLUSH_BUCKETS,
            registry=registry,
        )
        self._failures = Counter(
            PREFIX + "usage_flush_failures",
            "Batched writes of usage counts that failed; their counts wait for the next one.",
            registry=registry,
        )
        # The oldest worker's time is the one that matters: livemin merges the live workers'.
        self._caught_up = Gauge(
            LAST_FLUSH,
            "Unix time when this process last had every usage count written to the store.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.caught_up()

    def caught_up(self, since: float | None = None) -> None:
        """Every count made before `since` (Unix time, default now) is in the store."""
        self._caught_up.set(time.time() if since is None else since)

    def written(self, since: float, seconds: float) -> None:
        """A write that began at `since` and took `seconds` succeeded."""
        self._duration.observe(seconds)
        self.caught_up(since)

    def failed(self, seconds: float) -> None:
        self._duration.observe(seconds)
        self._failures.inc()


class GatewayMetrics:
    """Every series of one gateway, in a registry of its own.

    `multiprocess_dir` is the directory the workers of one run share; None
    when this process is the only one serving its ports.
    """

    def __init__(self, *, per_key: bool, multiprocess_dir: str | None = None) -> None:
        self.per_key = per_key
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        by_key = ("key_id",) if per_key else ()

        self._requests = Counter(
            PREFIX + "requests",
            "Requests answered on the public listener, by share operation and HTTP status.",
            ("operation", "status", *by_key),
            registry=self.registry,
        )
        self._denials = Counter(
            PREFIX + "denials",
            "Share requests refused by the gateway's checks, by error code.",
            ("reason", *by_key),
            registry=self.registry,
        )
        self._upstream_seconds = Histogram(
            PREFIX + "upstream_request_duration_seconds",
            "Time from sending a share operation upstream to its whole answer, or to the error.",
            ("operation",),
            buckets=UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self._upstream_errors = Counter(
            PREFIX + "upstream_errors",
            "Share operations the upstream did not answer: unavailable (refused, reset, "
            "unreachable) or timeout.",
            ("operation", "kind"),
            registry=self.registry,
        )
        hits = Counter(
            PREFIX + "key_cache_hits",
            "Key lookups answered from memory, unknown keys remembered as unknown included.",
            registry=self.registry,
        )
        misses = Counter(
            PREFIX + "key_cache_misses",
            "Key lookups that read the store.",
            registry=self.registry,
        )
        fallbacks = Counter(
            PREFIX + "rate_limit_fallbacks",
            "Rate-limited requests checked against this process's own window because the "
            "Redis of rate_limits.store did not answer.",
            registry=self.registry,
        )
        self.cache_hits: Tally = hits
        self.cache_misses: Tally = misses
        self.rate_limit_fallbacks: Tally = fallbacks
        self.flush = FlushMetrics(self.registry)
        if multiprocess_dir is None:
            # Another worker's CPU and memory would be shown as this one's: single process only.
            ProcessCollector(registry=self.registry)

        self._request_children: dict[tuple[str | None, int, str], Counter] = {}
        self._denial_children: dict[tuple[str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._error_children: dict[tuple[str, str], Counter] = {}
        self._source: Collector = (
            self.registry
            if multiprocess_dir is None
            else MultiProcessCollector(None, multiprocess_dir)  # type: ignore[no-untyped-call]
        )

    def _key_id(self, key: object) -> str:
        # Requests refused before a key was known carry an empty key_id, which Prometheus
        # shows as no key_id label at all.
        return getattr(key, "id", "") if self.per_key else ""

    def request(self, operation: str | None, status: int, key: object) -> None:
        """One answer on the public listener; key is the request's Key, or None."""
        key_id = self._key_id(key)
        labels = (operation, status, key_id)
        child = self._request_children.get(labels)
        if child is None:
            values = (operation or NO_OPERATION, str(status), key_id)
            child = self._requests.labels(*values[: 3 if self.per_key else 2])
            self._request_children[labels] = child
        child.inc()

    def denied(self, code: str, key: object) -> None:
        """A share request refused with this error code; key is its Key, or None."""
        key_id = self._key_id(key)
        labels = (code, key_id)
        child = self._denial_children.get(labels)
        if child is None:
            values = (code, key_id)
            child = self._denials.labels(*values[: 2 if self.per_key else 1])
            self._denial_children[labels] = child
        child.inc()

    def upstream_took(self, operation: str, seconds: float) -> None:
        """One call to the upstream, answered or not."""
        child = self._latency_children.get(operation)
        if child is None:
            child = self._latency_children[operation] = self._upstream_seconds.labels(operation)
        child.observe(seconds)

    def upstream_failed(self, operation: str, code: str) -> None:
        """A call the upstream did not answer; code is UPSTREAM_UNAVAILABLE or UPSTREAM_TIMEOUT."""
        labels = (operation, code)
        child = self._error_children.get(labels)
        if child is None:
            kind = code.removeprefix("UPSTREAM_").lower()
            child = self._error_children[labels] = self._upstream_errors.labels(operation, kind)
        child.inc()

    def exposition(self, keys: KeyCounts | None, now: float | None = None) -> bytes:
        """The text a scrape gets: every series, the flush lag, and the key counts if read."""
        families = list(self._source.collect())
        families += _flush_lag(families, time.time() if now is None else now)
        if keys is not None:
            families.append(_key_family(keys))
        return generate_latest(_Families(families))


class _Families:
    """A fixed list of metric families, in the shape generate_latest reads."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _flush_lag(families: list[Metric], now: float) -> list[Metric]:
    """Seconds since the usage counts were last all written, from the last-flush time.

    With several workers the last-flush time is the oldest live worker's, so
    the lag is the worst one.
    """
    for family in families:
        if family.name == LAST_FLUSH and family.samples:
            lag = GaugeMetricFamily(
                FLUSH_LAG,
                "Seconds since every usage count was last written to the store: up to "
                "usage.flush_interval_s while writes succeed, growing while they fail.",
                value=max(0.0, now - min(sample.value for sample in family.samples)),
            )
            return [lag]
    return []


def _key_family(counts: KeyCounts) -> Metric:
    family = GaugeMetricFamily(
        KEYS,
        "Keys in the store by state: active (usable now), inactive (not yet valid or "
        "expired) and deleted.",
        labels=("state",),
    )
    family.add_metric(("active",), counts.active)
    family.add_metric(("inactive",), counts.inactive)
    family.add_metric(("deleted",), counts.deleted)
    return family


def count_requests(metrics: GatewayMetrics) -> Middleware:
    """The public listener's middleware that counts every answer by operation and status.

    It sits outside the error middleware, so refusals are counted with the
    status the client got.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        metrics.request(request.get(ACCESS_OPERATION), response.status, request.get(ACCESS_KEY))
        return response

    return middleware
