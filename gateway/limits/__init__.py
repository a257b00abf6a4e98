"""Per-key rate limits; `rate_limits.store` picks where the windows are kept."""

from gateway.config import RateLimitSettings
from gateway.limits.base import RateLimiter, retry_after
from gateway.limits.local import LocalLimiter
from gateway.metrics import NOT_COUNTED, Tally


def open_limiter(settings: RateLimitSettings, fallbacks: Tally = NOT_COUNTED) -> RateLimiter:
    """The limiter for the settings, not yet opened.

    `fallbacks` counts the requests a Redis limiter decides without Redis.
    """
    if settings.local:
        return LocalLimiter()
    from gateway.limits.shared import RedisLimiter

    return RedisLimiter(settings.store, settings.redis_prefix, fallbacks)


__all__ = ["LocalLimiter", "RateLimiter", "open_limiter", "retry_after"]
