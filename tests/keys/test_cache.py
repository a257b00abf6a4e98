"""The key cache: lookups, and keeping many cached keys out of the cycle collector's walks."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.keys import cache as cache_module
from gateway.keys.cache import KeyCache
from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault
from gateway.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "gateway.db")
    await opened.open()
    yield opened
    await opened.close()


async def test_key_cache_freezes_keys_once_enough_are_cached(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cached keys leave the collector's reach, and are still freed when the cache drops them."""
    monkeypatch.setattr(cache_module, "FREEZE_AFTER", 5)
    vault = KeyVault("cache-test-secret")
    service = KeyService(store, vault)
    values = [(await service.create({"name": f"k{n}"}, "cli"))[1] for n in range(6)]
    cache = KeyCache(store, vault, poll_interval_s=0.05)
    cache.start()
    try:
        frozen_before = gc.get_freeze_count()
        found = [await cache.find(value) for value in values]
        for _ in range(100):
            if gc.get_freeze_count() > frozen_before:
                break
            await asyncio.sleep(0.02)
        frozen_after = gc.get_freeze_count()

        first = found[0]
        assert first is not None
        alive = weakref.ref(first)
        del found, first
        cache.invalidate()
    finally:
        await cache.stop()

    assert frozen_after > frozen_before
    assert alive() is None
