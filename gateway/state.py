"""What both listeners share while the gateway runs, held on each app under one AppKey."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from gateway.config import Settings
from gateway.keys.cache import KeyCache
from gateway.keys.service import KeyService
from gateway.limits import LocalLimiter, RateLimiter
from gateway.metrics import GatewayMetrics
from gateway.proxy.upstream import UpstreamClient
from gateway.store.base import Store
from gateway.usage import UsageCounter


@dataclass
class GatewayState:
    """The open store, the key service and cache, usage, the upstream client, rate limits."""

    settings: Settings
    store: Store
    keys: KeyService
    cache: KeyCache
    usage: UsageCounter
    upstream: UpstreamClient
    metrics: GatewayMetrics
    limiter: RateLimiter = field(default_factory=LocalLimiter)


STATE = web.AppKey("state", GatewayState)
