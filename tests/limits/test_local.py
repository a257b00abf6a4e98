"""The in-process sliding window log: exact under any arrival pattern, and bounded in memory."""

from __future__ import annotations

import bisect
import random

import pytest

from gateway.keys.model import RateLimit
from gateway.limits import retry_after
from gateway.limits.local import SWEEP_INTERVAL_S, LocalLimiter


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def most_in_any_window(times: list[float], window_s: float) -> int:
    """The largest number of times inside any half-open window (t - S, t]."""
    ordered = sorted(times)
    return max(
        (i + 1 - bisect.bisect_right(ordered, t - window_s) for i, t in enumerate(ordered)),
        default=0,
    )


@pytest.mark.parametrize(("requests", "per_seconds"), [(1, 1), (3, 2), (10, 5), (50, 60)])
@pytest.mark.parametrize("seed", range(5))
def test_local_limiter_admits_at_most_n_in_any_window(
    requests: int, per_seconds: int, seed: int
) -> None:
    """Random arrivals: no window of S seconds ever holds more than N admissions."""
    clock = Clock()
    limiter = LocalLimiter(clock)
    limit = RateLimit(requests, per_seconds)
    rng = random.Random(seed)
    admitted: list[float] = []
    refused = 0

    for _ in range(2000):
        clock.now += rng.expovariate(3 * requests / per_seconds)
        if limiter.take_now("k", limit) is None:
            admitted.append(clock.now)
        else:
            refused += 1

    assert most_in_any_window(admitted, per_seconds) == requests
    assert refused > 0


def test_local_limiter_refusal_says_when_the_oldest_admission_leaves() -> None:
    """The wait is the time until the oldest admission is S old; then one more is admitted."""
    clock = Clock()
    limiter = LocalLimiter(clock)
    limit = RateLimit(3, 10)

    first = []
    for _ in range(3):
        first.append(limiter.take_now("k", limit))
        clock.now += 1
    waits = [limiter.take_now("k", limit), limiter.take_now("k", limit)]
    clock.now += 7
    after = [limiter.take_now("k", limit), limiter.take_now("k", limit)]

    assert first == [None, None, None]
    assert waits == [7.0, 7.0]
    assert after == [None, pytest.approx(1.0)]


def test_local_limiter_keeps_keys_apart() -> None:
    """One key's budget is its own: another key with the same limit is not refused."""
    limiter = LocalLimiter(Clock())
    limit = RateLimit(1, 60)

    assert limiter.take_now("a", limit) is None
    assert limiter.take_now("a", limit) is not None
    assert limiter.take_now("b", limit) is None


@pytest.mark.parametrize(
    ("before", "after", "admitted_after"),
    [
        # Lowered: the latest admissions count against the new, smaller limit.
        (RateLimit(5, 60), RateLimit(2, 60), 0),
        # Raised: the admissions so far count, the rest of the new limit is free.
        (RateLimit(2, 60), RateLimit(5, 60), 3),
        # A shorter window frees what is older than it.
        (RateLimit(2, 60), RateLimit(2, 5), 2),
    ],
)
def test_local_limiter_follows_a_changed_limit(
    before: RateLimit, after: RateLimit, admitted_after: int
) -> None:
    """A limit changed mid-window is applied to the admissions already in the log."""
    clock = Clock()
    limiter = LocalLimiter(clock)
    while limiter.take_now("k", before) is None:
        clock.now += 0.001
    clock.now += 10

    admitted = 0
    while limiter.take_now("k", after) is None:
        admitted += 1

    assert admitted == admitted_after


def test_local_limiter_ring_stays_exact_after_changes_mid_ring() -> None:
    """Raising then lowering a limit with the ring part-way round keeps the N-in-S guarantee."""
    clock = Clock()
    limiter = LocalLimiter(clock)
    rng = random.Random(3)
    admitted: list[tuple[float, RateLimit]] = []
    limits = [RateLimit(4, 2), RateLimit(7, 2), RateLimit(3, 2)]

    for step in range(3000):
        limit = limits[(step // 100) % 3]
        clock.now += rng.expovariate(6)
        if limiter.take_now("k", limit) is None:
            admitted.append((clock.now, limit))

    # Each admission, with the limit in force then, had fewer than N in the S before it.
    times = [t for t, _ in admitted]
    for index, (t, limit) in enumerate(admitted):
        before = index - bisect.bisect_right(times, t - limit.per_seconds)
        assert before < limit.requests


def test_local_limiter_forgets_logs_that_left_their_window() -> None:
    """After a sweep only logs that could still refuse a request are kept."""
    clock = Clock()
    limiter = LocalLimiter(clock)
    limiter.take_now("short", RateLimit(1, 1))
    limiter.take_now("long", RateLimit(1, 3600))

    clock.now += SWEEP_INTERVAL_S
    limiter.take_now("new", RateLimit(1, 1))

    assert len(limiter) == 2
    assert limiter.take_now("long", RateLimit(1, 3600)) is not None
    assert limiter.take_now("short", RateLimit(1, 1)) is None


@pytest.mark.parametrize(
    ("wait_s", "header"), [(0.0001, "1"), (0.9, "1"), (1.0, "1"), (1.01, "2"), (59.2, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up_at_least_one(wait_s: float, header: str) -> None:
    """Retry-After never promises a moment earlier than the limiter would admit."""
    assert retry_after(wait_s) == header
