"""Keys by value hash, in memory, dropped whenever any process changes a key."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from gateway.keys.model import Key
from gateway.keys.values import KeyVault
from gateway.log import STORE_LOG
from gateway.metrics import NOT_COUNTED, Tally
from gateway.store.base import Store, StoreError

log = logging.getLogger(STORE_LOG)

# Misses are cached too (a flood of well-formed unknown keys must not reach the store
# each time), but only this many, so that they cannot grow memory without bound.
MAX_MISSES = 10_000


# After this many keys are added to the cache, they are taken out of the cycle collector.
FREEZE_AFTER = 1000


def freeze_long_lived() -> None:
    """Move every object alive now out of reach of the cycle collector's full collections.

    A cache of many keys holds millions of objects; each full collection walks them
    all, stopping the event loop for hundreds of milliseconds (measured: 300-450 ms
    with 100,000 keys cached). Cached keys hold no reference cycles, so reference
    counting still frees them when the cache drops them; freezing only spares the
    walks. The young generations are collected first, so that cyclic garbage of the
    moment is not frozen with them.
    """
    gc.collect(1)
    gc.freeze()


class KeyCache:
    """Finds keys by value; polls the store's change counter to see other processes' writes."""

    def __init__(
        self,
        store: Store,
        vault: KeyVault,
        poll_interval_s: float = 0.25,
        *,
        hit_tally: Tally = NOT_COUNTED,
        miss_tally: Tally = NOT_COUNTED,
    ) -> None:
        self.store = store
        self.vault = vault
        self.poll_interval_s = poll_interval_s
        self.hit_tally = hit_tally
        self.miss_tally = miss_tally
        self._keys: dict[str, Key | None] = {}
        self._misses = 0
        # Keys cached since the objects of the process were last frozen.
        self._unfrozen = 0
        self._generation = 0
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.hits = 0
        self.lookups = 0

    async def find(self, value: str) -> Key | None:
        """The live key with this value (or previous value, after a rotation), or None."""
        return await self.find_by_hash(self.vault.lookup_hash(value))

    async def find_by_hash(self, lookup_hash: str) -> Key | None:
        """The live key whose value or previous value has this lookup hash."""
        if lookup_hash in self._keys:
            self.hits += 1
            self.hit_tally.inc()
            return self._keys[lookup_hash]

        self.lookups += 1
        self.miss_tally.inc()
        generation = self._generation
        key = await self.store.find_key(lookup_hash)
        # A change that landed while we read must not be overwritten by what we read.
        if generation == self._generation:
            if key is None:
                self._misses += 1
                if self._misses > MAX_MISSES:
                    self._drop_misses()
            self._keys[lookup_hash] = key
            if key is not None:
                self._unfrozen += 1
        return key

    def _drop_misses(self) -> None:
        self._keys = {h: k for h, k in self._keys.items() if k is not None}
        self._misses = 0

    def invalidate(self) -> None:
        """Forget everything; the next request of each key reads the store."""
        self._generation += 1
        self._keys = {}
        self._misses = 0

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                version = await self.store.key_version()
            except StoreError as exc:
                log.warning("key change check failed: %s", exc)
                continue
            if version != self._version:
                if self._version is not None:
                    log.debug("keys changed (version %d), cache dropped", version)
                self._version = version
                self.invalidate()
            if self._unfrozen >= FREEZE_AFTER:
                self._unfrozen = 0
                freeze_long_lived()

    def start(self) -> None:
        self.store.subscribe(self.invalidate)
        self._task = asyncio.create_task(self._poll(), name="key-cache-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
