"""Per-key rate limits; `rate_limits.store` picks where the windows are kept."""

from gateway.config import RateLimitSettings
from gateway.limits.base import RateLimiter, retry_after
from gateway.limits.local import LocalLimiter


def open_limiter(settings: RateLimitSettings) -> RateLimiter:
    """The limiter for the settings (not yet opened)."""
    if settings.local:
        return LocalLimiter()
    from gateway.limits.shared import RedisLimiter

    return RedisLimiter(settings.store, settings.redis_prefix)


__all__ = ["LocalLimiter", "RateLimiter", "open_limiter", "retry_after"]
