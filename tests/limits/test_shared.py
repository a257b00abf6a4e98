"""The Redis limiter on a real Redis: one budget for every process, and Redis going away."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from gateway.keys.model import RateLimit
from gateway.limits.shared import RedisLimiter
from gateway.log import LIMITS_LOG
from tests.processes import free_port
from tests.redisdb import REDIS_URL, RedisServer, keys_under


class Records(logging.Handler):
    """Keeps every record of the logger it is added to."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def limits_log() -> Iterator[Records]:
    """What gateway.limits logs during the test, however logging is configured."""
    logger = logging.getLogger(LIMITS_LOG)
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
async def limiters(redis_prefix: str) -> AsyncIterator[Callable[..., RedisLimiter]]:
    """Make RedisLimiters (open them with `await limiter.open()`); all are closed at the end."""
    made: list[RedisLimiter] = []

    def make(url: str = REDIS_URL) -> RedisLimiter:
        limiter = RedisLimiter(url, redis_prefix)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def opened(make: Callable[..., RedisLimiter], url: str = REDIS_URL) -> RedisLimiter:
    limiter = make(url)
    await limiter.open()
    return limiter


async def test_redis_limiter_shares_one_budget_exactly_across_limiters(
    limiters: Callable[..., RedisLimiter],
) -> None:
    """300 concurrent takes through two limiters (two processes) admit exactly 40 of 40/60."""
    first, second = await opened(limiters), await opened(limiters)
    limit = RateLimit(40, 60)
    key_id = str(uuid.uuid4())

    waits = await asyncio.gather(
        *(limiter.take(key_id, limit) for _ in range(150) for limiter in (first, second))
    )

    refused = [wait for wait in waits if wait is not None]
    assert waits.count(None) == 40
    assert len(refused) == 260
    assert all(0 < wait <= 60 for wait in refused)
    assert first.fallbacks == second.fallbacks == 0


async def test_redis_limiter_stays_exact_when_takes_are_cut_into_batches(
    limiters: Callable[..., RedisLimiter],
) -> None:
    """1000 takes in one turn of the loop go as several script calls and admit exactly 300."""
    limiter = await opened(limiters)
    key_ids = [str(uuid.uuid4()) for _ in range(2)]

    waits = await asyncio.gather(
        *(limiter.take(key_ids[n % 2], RateLimit(150, 60)) for n in range(1000))
    )

    assert waits.count(None) == 300
    assert [w for n, w in enumerate(waits) if n % 2 == 0].count(None) == 150


async def test_redis_limiter_log_is_named_by_key_id_and_expires(
    limiters: Callable[..., RedisLimiter], redis_prefix: str
) -> None:
    """One Redis list per key, PREFIX:rate:KEY_ID, holding the admissions, set to expire."""
    limiter = await opened(limiters)
    key_id = str(uuid.uuid4())
    for _ in range(3):
        assert await limiter.take(key_id, RateLimit(5, 30)) is None

    with redis.Redis.from_url(REDIS_URL) as client:
        length = client.llen(f"{redis_prefix}:rate:{key_id}")
        ttl_ms = client.pttl(f"{redis_prefix}:rate:{key_id}")

    assert keys_under(redis_prefix) == [f"{redis_prefix}:rate:{key_id}"]
    assert length == 3
    assert 0 < ttl_ms <= 30_000


@pytest.mark.parametrize(
    ("before", "after", "admitted_after"),
    [
        (RateLimit(5, 60), RateLimit(2, 60), 0),
        (RateLimit(2, 60), RateLimit(5, 60), 3),
        (RateLimit(5, 60), RateLimit(5, 1), 5),
    ],
)
async def test_redis_limiter_follows_a_changed_limit(
    limiters: Callable[..., RedisLimiter],
    before: RateLimit,
    after: RateLimit,
    admitted_after: int,
) -> None:
    """A limit lowered, raised or given a shorter window applies to the admissions logged."""
    limiter = await opened(limiters)
    key_id = str(uuid.uuid4())
    while await limiter.take(key_id, before) is None:
        pass
    if after.per_seconds < before.per_seconds:
        await asyncio.sleep(after.per_seconds)

    admitted = 0
    while await limiter.take(key_id, after) is None:
        admitted += 1

    assert admitted == admitted_after


async def test_redis_limiter_admits_again_once_the_wait_has_passed(
    limiters: Callable[..., RedisLimiter],
) -> None:
    """The wait a refusal answers is enough: after it, the next request is admitted."""
    limiter = await opened(limiters)
    key_id = str(uuid.uuid4())
    limit = RateLimit(2, 1)
    admitted = [await limiter.take(key_id, limit), await limiter.take(key_id, limit)]
    wait = await limiter.take(key_id, limit)

    assert admitted == [None, None]
    assert wait is not None and 0 < wait <= 1
    await asyncio.sleep(wait)
    assert await limiter.take(key_id, limit) is None


async def test_redis_limiter_unreachable_falls_back_to_a_window_per_process(
    limiters: Callable[..., RedisLimiter], limits_log: Records
) -> None:
    """Redis on a closed port: requests are limited by this process alone, warned once."""
    closed = f"redis://:not-logged-secret@127.0.0.1:{free_port()}/0"
    limiter = await opened(limiters, closed)
    limit = RateLimit(3, 60)
    key_id = str(uuid.uuid4())

    started = time.monotonic()
    waits = [await limiter.take(key_id, limit) for _ in range(5)]
    took = time.monotonic() - started

    assert waits[:3] == [None, None, None]
    assert all(wait is not None and 0 < wait <= 60 for wait in waits[3:])
    assert limiter.fallbacks == 5
    warnings = [r for r in limits_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rate limits are per process until it answers" in warnings[0].getMessage()
    assert "not-logged-secret" not in " ".join(limits_log.messages())
    assert ":***@127.0.0.1" in warnings[0].getMessage()
    # Refused connections fail fast; nothing waited for a timeout.
    assert took < 2


async def test_redis_limiter_comes_back_to_redis_after_an_outage(
    limiters: Callable[..., RedisLimiter],
    redis_server: Callable[[], RedisServer],
    redis_prefix: str,
    limits_log: Records,
) -> None:
    """Redis stopped: takes fall back; Redis started again: takes go to Redis again."""
    server = redis_server()
    limiter = await opened(limiters, server.url)
    limit = RateLimit(1000, 60)
    key_id = str(uuid.uuid4())
    assert await limiter.take(key_id, limit) is None

    server.stop()
    during = [await limiter.take(key_id, limit) for _ in range(3)]
    fell_back = limiter.fallbacks
    server.start()
    deadline = time.monotonic() + 10
    while True:
        before = limiter.fallbacks
        assert await limiter.take(key_id, limit) is None
        if limiter.fallbacks == before or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)

    assert during == [None, None, None]
    assert fell_back == 3
    assert keys_under(redis_prefix, server.url) == [f"{redis_prefix}:rate:{key_id}"]
    messages = [r.getMessage() for r in limits_log.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "unavailable" in messages[0]
    assert "answers again" in messages[1]
