"""GET /metrics on the admin listener: the Prometheus text, for an admin token only."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.admin.auth import admin_name
from gateway.keys.service import utcnow
from gateway.log import ADMIN_LOG
from gateway.metrics import CONTENT_TYPE
from gateway.state import STATE
from gateway.store.base import KeyCounts, StoreError

log = logging.getLogger(ADMIN_LOG)

METRICS = "/metrics"

# Well inside Prometheus's default scrape timeout (10 s): a stuck store must not cost the
# scrape every other series.
KEY_COUNT_TIMEOUT_S = 3.0


async def metrics(request: web.Request) -> web.Response:
    """Every series of this gateway (of every worker, with server.workers above one)."""
    state = request.app[STATE]
    admin_name(request.headers.get("Authorization"), state.settings.admin.tokens)

    counts: KeyCounts | None = None
    try:
        counts = await asyncio.wait_for(state.store.count_keys(utcnow()), KEY_COUNT_TIMEOUT_S)
    except (StoreError, TimeoutError) as exc:
        # The other series matter most when the store is in trouble: answer them anyway.
        log.warning("metrics: keys not counted, the store did not answer: %s", exc or "timeout")

    body = state.metrics.exposition(counts)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_metrics_route(app: web.Application) -> None:
    app.router.add_get(METRICS, metrics, allow_head=False)
