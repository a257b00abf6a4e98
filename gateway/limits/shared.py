"""The fleet-wide limiter: one sliding window log per key in Redis, shared by every process."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.config import redacted_url
from gateway.keys.model import RateLimit
from gateway.limits.local import LocalLimiter
from gateway.log import LIMITS_LOG

log = logging.getLogger(LIMITS_LOG)

# A limiter that waits on Redis holds up every limited request: fail over quickly.
TIMEOUT_S = 0.5
# After a failure, requests skip Redis this long, so an outage costs one timeout a
# second rather than one per request.
RETRY_INTERVAL_S = 1.0
MAX_CONNECTIONS = 64

# One key's log: the Redis times (microseconds) of its latest admissions, oldest first,
# at most ARGV[1] of them. Redis's own clock, so that gateways whose clocks differ
# still share one window. The whole script runs atomically: no other request of any
# gateway can be checked between reading the log and recording an admission.
# Answers 0 when admitted, otherwise the microseconds until a request could be.
SLIDING_LOG = """
local requests = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local length = redis.call('LLEN', KEYS[1])
if length > requests then
  -- The limit was lowered: only the latest admissions count.
  redis.call('LTRIM', KEYS[1], length - requests, -1)
  length = requests
end
if length == requests then
  local oldest = tonumber(redis.call('LINDEX', KEYS[1], 0))
  if now - oldest < window then
    return oldest + window - now
  end
  redis.call('LPOP', KEYS[1])
end
redis.call('RPUSH', KEYS[1], string.format('%.0f', now))
-- Once the newest admission has left the window the log refuses nothing: let it go.
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return 0
"""


class RedisLimiter:
    """Keys' logs in Redis, under `PREFIX:rate:KEY_ID` (the key's id, never its value).

    When Redis does not answer, requests are checked by this process's own
    limiter instead: each process then admits up to the limit on its own, which
    bounds a key by the number of processes rather than not at all, and keeps
    the share API up while Redis is down. A warning is logged when Redis is
    lost and again when it is back; `fallbacks` counts the requests checked
    without it.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.where = redacted_url(url)
        self.prefix = prefix
        self.fallback = LocalLimiter()
        self.fallbacks = 0
        self._redis: aioredis.Redis | None = None
        self._script: AsyncScript | None = None
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
        if self._redis is not None:
            client, self._redis, self._script = self._redis, None, None
            await client.aclose(close_connection_pool=True)
        await self.fallback.close()

    def log_key(self, key_id: str) -> str:
        return f"{self.prefix}:rate:{key_id}"

    async def take(self, key_id: str, limit: RateLimit) -> float | None:
        if self._script is None or time.monotonic() < self._down_until:
            self.fallbacks += 1
            return self.fallback.take_now(key_id, limit)
        try:
            wait_us = await self._script(
                keys=[self.log_key(key_id)], args=[limit.requests, limit.per_seconds * 1_000_000]
            )
        except (RedisError, OSError) as exc:
            self._lost(exc)
            self.fallbacks += 1
            return self.fallback.take_now(key_id, limit)
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again; rate limits are fleet-wide again", self.where)
        return None if int(wait_us) <= 0 else int(wait_us) / 1_000_000

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
