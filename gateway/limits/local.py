"""The in-process limiter: a sliding window log per key, exact within one process."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable

from gateway.keys.model import RateLimit

# How often logs that can no longer refuse anything are dropped.
SWEEP_INTERVAL_S = 60.0


class SlidingLog:
    """The times of a key's latest admissions, at most `requests` of them, in a ring.

    A request at time t is admitted when fewer than N requests were admitted in
    (t - S, t], that is when the N-th latest admission is at least S seconds
    old. Only the latest N admissions can decide that, so the ring holds N
    times (8 bytes each) and every check is O(1).
    """

    __slots__ = ("head", "times", "window_s")

    def __init__(self) -> None:
        self.times = array("d")
        # The oldest admission once the ring is full; 0 while it fills.
        self.head = 0
        self.window_s = 0.0

    def admit(self, now: float, requests: int, window_s: float) -> float | None:
        """None and record `now`, or the seconds until a request could be admitted."""
        self.window_s = window_s
        times = self.times
        if len(times) > requests or (self.head and len(times) < requests):
            # The limit changed since the last request: keep the latest, oldest first.
            ordered = times[self.head :] + times[: self.head]
            self.times = times = ordered[-requests:]
            self.head = 0
        if len(times) < requests:
            times.append(now)
            return None

        oldest = times[self.head]
        if now - oldest < window_s:
            return oldest + window_s - now
        times[self.head] = now
        self.head = (self.head + 1) % requests
        return None

    def newest(self) -> float:
        return self.times[self.head - 1] if self.times else float("-inf")


class LocalLimiter:
    """Every key's log in this process's memory.

    `take` never awaits between reading a log and recording an admission, so
    concurrent requests on the event loop cannot both take the last place.
    Each process keeps its own logs: with several workers or gateways, each
    admits up to the limit on its own (the Redis limiter shares one log).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logs: dict[str, SlidingLog] = {}
        self._swept = clock()

    async def open(self) -> None:
        """Nothing to open: the logs live in this process."""

    async def close(self) -> None:
        self._logs.clear()

    async def take(self, key_id: str, limit: RateLimit) -> float | None:
        return self.take_now(key_id, limit)

    def take_now(self, key_id: str, limit: RateLimit) -> float | None:
        """`take` without a coroutine, for callers that must not yield."""
        now = self.clock()
        if now - self._swept >= SWEEP_INTERVAL_S:
            self._sweep(now)
        log = self._logs.get(key_id)
        if log is None:
            log = self._logs[key_id] = SlidingLog()
        return log.admit(now, limit.requests, float(limit.per_seconds))

    def _sweep(self, now: float) -> None:
        # A log whose newest admission left the window refuses nothing: forget it, so
        # that keys used once, deleted or no longer limited do not hold memory.
        self._logs = {
            key_id: log for key_id, log in self._logs.items() if now - log.newest() < log.window_s
        }
        self._swept = now

    def __len__(self) -> int:
        return len(self._logs)
