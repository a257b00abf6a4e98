"""Usage counted in memory on the request path and written to the store in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

from gateway.log import USAGE_LOG
from gateway.metrics import FlushMetrics
from gateway.store.base import Store, StoreError, UsageDelta

log = logging.getLogger(USAGE_LOG)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class UsageCounter:
    """Counts per key, flushed every interval and once more on shutdown.

    A flush swaps the pending counts out before writing; if the write fails
    they are merged back, so a count is written exactly once: never lost to a
    failed flush, never added twice.
    """

    def __init__(
        self, store: Store, interval_s: float, metrics: FlushMetrics | None = None
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.metrics = metrics
        self._pending: dict[str, UsageDelta] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.failures = 0

    def _delta(self, key_id: str) -> UsageDelta:
        delta = self._pending.get(key_id)
        if delta is None:
            delta = self._pending[key_id] = UsageDelta(hours={})
        return delta

    def allowed(self, key_id: str, at: datetime) -> None:
        """One request that passed every check and went upstream."""
        delta = self._delta(key_id)
        delta.allowed += 1
        if delta.last_used_at is None or at > delta.last_used_at:
            delta.last_used_at = at
        assert delta.hours is not None
        delta.hours.setdefault(_hour(at), [0, 0])[0] += 1

    def denied(self, key_id: str, at: datetime) -> None:
        """One request by a known key that a check refused."""
        delta = self._delta(key_id)
        delta.denied += 1
        assert delta.hours is not None
        delta.hours.setdefault(_hour(at), [0, 0])[1] += 1

    @property
    def flushing(self) -> bool:
        """True while a batch is being written."""
        return self._lock.locked()

    def pending(self, key_id: str) -> UsageDelta | None:
        """Counts not yet written, so that this process can show exact figures."""
        return self._pending.get(key_id)

    async def flush(self) -> None:
        """Write what is pending; on failure keep it for the next try."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                if self.metrics is not None:
                    self.metrics.caught_up()
                return
            # Counts made while the write runs are not in it: caught up only to its start.
            since, started = time.time(), time.perf_counter()
            try:
                await self.store.add_usage(batch)
            except (StoreError, OSError) as exc:
                self.failures += 1
                self._merge_back(batch)
                if self.metrics is not None:
                    self.metrics.failed(time.perf_counter() - started)
                log.warning(
                    "usage flush failed, %d keys kept for the next try: %s", len(batch), exc
                )
                raise
            if self.metrics is not None:
                self.metrics.written(since, time.perf_counter() - started)

    def _merge_back(self, batch: dict[str, UsageDelta]) -> None:
        for key_id, old in batch.items():
            delta = self._delta(key_id)
            delta.allowed += old.allowed
            delta.denied += old.denied
            if old.last_used_at and (
                not delta.last_used_at or old.last_used_at > delta.last_used_at
            ):
                delta.last_used_at = old.last_used_at
            assert delta.hours is not None
            for hour, (allowed, denied) in (old.hours or {}).items():
                counts = delta.hours.setdefault(hour, [0, 0])
                counts[0] += allowed
                counts[1] += denied

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(StoreError, OSError):
                await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def stop(self) -> None:
        """Stop the timer and write the last counts (retrying a few times if the store is busy)."""
        if self._task is not None:
            # A flush cancelled mid-write would leave its batch neither surely written nor
            # kept for the next try: wait for one in progress, then stop the timer.
            async with self._lock:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for attempt in range(5):
            try:
                await self.flush()
                return
            except (StoreError, OSError):
                await asyncio.sleep(0.2 * (attempt + 1))
        log.error("usage counts could not be written at shutdown")
