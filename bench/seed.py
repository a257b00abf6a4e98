"""Many real keys in a gateway store, made by the gateway's own key service."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault
from gateway.store.sqlite import SqliteStore

ACTOR = "bench"


async def _seed(db_path: Path, secret: str, fields: dict[str, Any], count: int) -> list[str]:
    store = SqliteStore(db_path)
    await store.open()
    try:
        # Durability buys nothing for a throw-away store and its fsyncs only slow the
        # seeding; the rows are the ones the key service writes, made the same way.
        await store.db.execute("PRAGMA synchronous = OFF")
        service = KeyService(store, KeyVault(secret))
        values: list[str] = []
        started = time.monotonic()
        for number in range(1, count + 1):
            _, value = await service.create({**fields, "name": f"bench-{number}"}, ACTOR)
            values.append(value)
            if number % 20_000 == 0:
                elapsed = time.monotonic() - started
                print(f"  {number:,} keys in {elapsed:.0f} s", flush=True)
        return values
    finally:
        await store.close()


def seed_keys(
    db_path: Path, secret: str, fields: dict[str, Any], count: int, values_file: Path
) -> list[str]:
    """Create `count` keys with these fields; their values also go to `values_file`.

    The values file is what wrk reads to spread requests over the keys; it is
    written owner-only, as the gateway writes its own secrets.
    """
    values = asyncio.run(_seed(db_path, secret, fields, count))
    fd = os.open(values_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("\n".join(values) + "\n")
    return values
