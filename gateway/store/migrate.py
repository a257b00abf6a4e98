"""Moving everything one store holds into another, for example SQLite to PostgreSQL.

Sealed key values are copied as they are: the gateways on the target must use
the same `store.secret_key` as those on the source, or no key can be found or
revealed there.

Notes: the whole store is read into memory first, which is fine for the tens
of thousands of keys a gateway holds; usage written to the source while the
copy runs is not copied, so stop the gateways first.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import sqlite_path
from gateway.store import open_store
from gateway.store.base import Store, StoreStartError


@dataclass(frozen=True)
class CopyReport:
    """What a copy wrote."""

    keys: int
    deleted_keys: int
    events: int
    buckets: int

    def __str__(self) -> str:
        return (
            f"{self.keys} keys ({self.deleted_keys} deleted), {self.events} history events,"
            f" {self.buckets} hourly usage buckets"
        )


async def copy_store(source: Store, target: Store) -> CopyReport:
    """Copy keys (deleted ones too), history in order, usage totals and hourly buckets.

    Raises StoreNotEmpty, writing nothing, when the target already holds keys.
    """
    dump = await source.export_all()
    await target.import_all(dump)
    return CopyReport(
        keys=len(dump.keys),
        deleted_keys=len(dump.deleted),
        events=len(dump.events),
        buckets=len(dump.buckets),
    )


async def copy_store_url(source_url: str, target_url: str) -> CopyReport:
    """Open both stores (the target's schema is created if new), copy, close them."""
    path = sqlite_path(source_url)
    # Opening a SQLite file that is not there would create an empty store to copy from.
    if path is not None and not path.is_file():
        raise StoreStartError(f"no store at {path}")
    source = open_store(source_url)
    target = open_store(target_url)
    await source.open()
    try:
        await target.open()
        try:
            return await copy_store(source, target)
        finally:
            await target.close()
    finally:
        await source.close()
