"""What a rate limiter does, whichever store keeps its windows."""

from __future__ import annotations

import math
from typing import Protocol

from gateway.keys.model import RateLimit


class RateLimiter(Protocol):
    """Takes one request from a key's budget, or says how long until one is free.

    The guarantee, per key: at most `limit.requests` requests are admitted in any
    window of `limit.per_seconds` seconds (a sliding window log of admissions).
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def take(self, key_id: str, limit: RateLimit) -> float | None:
        """None when the request is admitted (and recorded in the window).

        Otherwise the seconds until the oldest admission in the window leaves
        it, which is the earliest moment a request could be admitted again.
        """


def retry_after(wait_s: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
