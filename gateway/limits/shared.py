"""The fleet-wide limiter: one sliding window log per key in Redis, shared by every process."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.config import redacted_url
from gateway.keys.model import RateLimit
from gateway.limits.local import LocalLimiter
from gateway.log import LIMITS_LOG
from gateway.metrics import NOT_COUNTED, Tally

log = logging.getLogger(LIMITS_LOG)

# A limiter that waits on Redis holds up every limited request: fail over quickly.
TIMEOUT_S = 0.5
# After a failure, requests skip Redis this long, so an outage costs one timeout a
# second rather than one per request.
RETRY_INTERVAL_S = 1.0
MAX_CONNECTIONS = 32
# The script holds Redis while it runs: a batch is cut at this many requests.
MAX_BATCH = 256

# Each key's log: the Redis times (microseconds) of its latest admissions, oldest
# first, at most `requests` of them. Redis's own clock, so that gateways whose clocks
# differ still share one window. A script runs atomically: no request of any gateway
# is checked between reading a log and recording an admission in it.
# KEYS: one log per request; ARGV: requests and window (microseconds) for each.
# Answers, per request, 0 when admitted, otherwise the microseconds until a request
# could be. Requests of one call are checked in order, as if sent one by one.
SLIDING_LOG = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local waits = {}
for i, log in ipairs(KEYS) do
  local requests = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local length = redis.call('LLEN', log)
  if length > requests then
    -- The limit was lowered: only the latest admissions count.
    redis.call('LTRIM', log, length - requests, -1)
    length = requests
  end
  waits[i] = 0
  if length == requests then
    local oldest = tonumber(redis.call('LINDEX', log, 0))
    if now - oldest < window then
      waits[i] = oldest + window - now
    else
      redis.call('LPOP', log)
    end
  end
  if waits[i] == 0 then
    redis.call('RPUSH', log, string.format('%.0f', now))
    -- Once the newest admission has left the window the log refuses nothing: let it go.
    redis.call('PEXPIRE', log, math.ceil(window / 1000))
  end
end
return waits
"""


@dataclass
class _Batch:
    """Takes asked for in one turn of the event loop, sent to Redis in one call."""

    keys: list[str] = field(default_factory=list)
    args: list[int] = field(default_factory=list)
    asks: list[tuple[str, RateLimit, asyncio.Future[float | None]]] = field(default_factory=list)


class RedisLimiter:
    """Keys' logs in Redis, under `PREFIX:rate:KEY_ID` (the key's id, never its value).

    The takes of one turn of the event loop go to Redis in one script call, so
    that under load one round trip serves many requests; the script checks them
    one after another, so the count stays exact.

    When Redis does not answer, requests are checked by this process's own
    limiter instead: each process then admits up to the limit on its own, which
    bounds a key by the number of processes rather than not at all, and keeps
    the share API up while Redis is down. A warning is logged when Redis is
    lost and again when it is back; `fallbacks` counts the requests checked
    without it.
    """

    def __init__(self, url: str, prefix: str, fallback_tally: Tally = NOT_COUNTED) -> None:
        self.url = url
        self.where = redacted_url(url)
        self.prefix = prefix
        self.fallback = LocalLimiter()
        self.fallbacks = 0
        self.fallback_tally = fallback_tally
        self._redis: aioredis.Redis | None = None
        self._script: AsyncScript | None = None
        self._batch: _Batch | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._down = False

    async def open(self) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._script = self._redis.register_script(SLIDING_LOG)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            self._lost(exc)
        else:
            log.info("rate limits kept in Redis at %s", self.where)

    async def close(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._redis is not None:
            client, self._redis, self._script = self._redis, None, None
            await client.aclose(close_connection_pool=True)
        await self.fallback.close()

    def log_key(self, key_id: str) -> str:
        return f"{self.prefix}:rate:{key_id}"

    async def take(self, key_id: str, limit: RateLimit) -> float | None:
        if self._script is None or time.monotonic() < self._down_until:
            self.fallbacks += 1
            self.fallback_tally.inc()
            return self.fallback.take_now(key_id, limit)
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None or len(batch.asks) >= MAX_BATCH:
            batch = self._batch = _Batch()
            loop.call_soon(self._send_batch, batch)
        answer: asyncio.Future[float | None] = loop.create_future()
        batch.keys.append(self.log_key(key_id))
        batch.args += (limit.requests, limit.per_seconds * 1_000_000)
        batch.asks.append((key_id, limit, answer))
        return await answer

    def _send_batch(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        script = self._script
        if script is None:
            # Closed while the batch waited for its turn: nothing to ask.
            self._decide_here(batch)
            return
        try:
            waits = await script(keys=batch.keys, args=batch.args)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            self._decide_here(batch)
            return
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again; rate limits are fleet-wide again", self.where)
        for (_, _, answer), wait_us in zip(batch.asks, waits, strict=True):
            # A request that gave up waiting (its client left) has nothing to be told.
            if not answer.done():
                answer.set_result(None if int(wait_us) <= 0 else int(wait_us) / 1_000_000)

    def _decide_here(self, batch: _Batch) -> None:
        """Check a batch's requests against this process's own windows."""
        self.fallbacks += len(batch.asks)
        self.fallback_tally.inc(len(batch.asks))
        for key_id, limit, answer in batch.asks:
            if not answer.done():
                answer.set_result(self.fallback.take_now(key_id, limit))

    def _lost(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_INTERVAL_S
        if not self._down:
            self._down = True
            # SECURITY: the URL is shown without its password; redis-py's messages carry none.
            log.warning(
                "Redis at %s unavailable (%s); rate limits are per process until it answers",
                self.where,
                exc or type(exc).__name__,
            )
