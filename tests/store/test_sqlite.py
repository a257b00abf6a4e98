"""The SQLite store on a real file: schema, durability of values at rest, usage sums."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.keys.model import RateLimit
from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault
from gateway.store import StoreError, StoreStartError, UsageDelta
from gateway.store.schema import MIGRATIONS
from gateway.store.sqlite import SqliteStore
from gateway.usage import UsageCounter
from tests.processes import ADMIN_TOKEN, SECRET_KEY

T0 = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)
LIMIT = {"requests": 100, "perSeconds": 60}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "gateway.db")
    await opened.open()
    yield opened
    await opened.close()


async def test_sqlite_concurrent_writes_wait_for_each_other(store: SqliteStore) -> None:
    """Key changes and usage flushes at once all succeed: one transaction at a time."""
    service = KeyService(store, KeyVault(SECRET_KEY))
    key, _ = await service.create({"name": "k"}, "test")

    async def create(n: int) -> None:
        await service.create({"name": f"k{n}"}, "test")

    async def flush() -> None:
        await store.add_usage({key.id: UsageDelta(1, 0, T0, {HOUR: [1, 0]})})

    await asyncio.gather(*(create(n) for n in range(20)), *(flush() for _ in range(20)))

    stored = await store.get_key(key.id)
    assert stored is not None
    assert (len(await store.list_keys()), stored.usage_count) == (21, 20)


async def test_open_applies_every_migration_once(tmp_path: Path) -> None:
    """Opening twice leaves one row per migration and WAL mode on."""
    for _ in range(2):
        store = SqliteStore(tmp_path / "gateway.db")
        await store.open()
        await store.close()

    with sqlite3.connect(tmp_path / "gateway.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]

    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert mode == "wal"


async def test_open_refuses_an_unwritable_folder_naming_it(tmp_path: Path) -> None:
    """A data folder that cannot be created stops start-up with its path in the message."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = SqliteStore(blocker / "data" / "gateway.db")

    with pytest.raises(StoreStartError, match=str(blocker / "data")):
        await store.open()


async def test_usage_batches_add_up(store: SqliteStore) -> None:
    """Two batches for one key sum their counts and keep the latest use."""
    service = KeyService(store, KeyVault(SECRET_KEY))
    key, _ = await service.create({"name": "k"}, "test")
    later = datetime(2026, 12, 1, 10, 45, tzinfo=UTC)

    await store.add_usage({key.id: UsageDelta(3, 1, later, {HOUR: [3, 1]})})
    await store.add_usage({key.id: UsageDelta(2, 4, T0, {HOUR: [2, 4]})})
    stored = await store.get_key(key.id)
    buckets = await store.usage_buckets(key.id, HOUR)

    assert stored is not None
    assert (stored.usage_count, stored.denied_count, stored.last_used_at) == (5, 5, later)
    assert [(b.start, b.allowed, b.denied) for b in buckets] == [(HOUR, 5, 5)]


async def test_failed_flush_is_kept_and_written_once(store: SqliteStore) -> None:
    """A flush that fails keeps its counts; the next one writes them exactly once."""
    service = KeyService(store, KeyVault(SECRET_KEY))
    key, _ = await service.create({"name": "k"}, "test")
    counter = UsageCounter(store, interval_s=60)
    for _ in range(7):
        counter.allowed(key.id, T0)
    counter.denied(key.id, T0)

    await store.close()
    with pytest.raises(StoreError):
        await counter.flush()
    await store.open()
    counter.allowed(key.id, T0)
    await counter.flush()
    await counter.flush()
    stored = await store.get_key(key.id)

    assert stored is not None
    assert (stored.usage_count, stored.denied_count, counter.failures) == (8, 1, 1)


async def test_key_version_grows_with_each_change(store: SqliteStore) -> None:
    """Create, update and delete each move the change counter other processes watch."""
    service = KeyService(store, KeyVault(SECRET_KEY))
    versions = [await store.key_version()]
    key, _ = await service.create({"name": "k"}, "test")
    versions.append(await store.key_version())
    await service.update(key.id, {"name": "k2"}, "test")
    versions.append(await store.key_version())
    await service.delete(key.id, "test")
    versions.append(await store.key_version())

    assert versions == [0, 1, 2, 3]


def _files(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.glob("gateway.db*")))


async def test_store_files_never_hold_a_value_or_token(tmp_path: Path) -> None:
    """After create, reveal, download and delete, no file of the store holds a secret."""
    from tests.conftest import test_settings

    gateway = Gateway(test_settings(tmp_path))
    await gateway.start()
    values = []
    try:
        async with aiohttp.ClientSession(
            base_url=gateway.admin_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            for name in ("a", "b", "c"):
                created = await (await admin.post("/admin/api/keys", json={"name": name})).json()
                values.append(created["value"])
                await admin.post(f"/admin/api/keys/{created['id']}/reveal")
                await admin.get(f"/admin/api/keys/{created['id']}/download")
            await admin.delete(f"/admin/api/keys/{created['id']}")
    finally:
        await gateway.stop()

    stored = _files(tmp_path)
    assert len(stored) > 0
    for secret in [*values, ADMIN_TOKEN, SECRET_KEY]:
        assert secret.encode() not in stored


async def test_open_upgrades_a_store_made_before_rate_limits(tmp_path: Path) -> None:
    """A version 2 file gains the rate limit columns; its keys keep working, with no limit."""
    path = tmp_path / "gateway.db"
    vault = KeyVault(SECRET_KEY)
    old = SqliteStore(path)
    await old.open()
    key, value = await KeyService(old, vault).create({"name": "old", "admin": True}, "ops")
    await old.close()
    # Back to the schema as version 2 left it.
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE keys DROP COLUMN rate_limit_requests")
        db.execute("ALTER TABLE keys DROP COLUMN rate_limit_per_seconds")
        db.execute("DELETE FROM schema_version WHERE version > 2")

    store = SqliteStore(path)
    await store.open()
    found = await store.find_key(vault.lookup_hash(value))
    await KeyService(store, vault).update(key.id, {"rateLimit": LIMIT}, "ops")
    limited = await store.get_key(key.id)
    await store.close()
    with sqlite3.connect(path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]

    assert found is not None and (found.id, found.admin, found.rate_limit) == (key.id, True, None)
    assert limited is not None and limited.rate_limit == RateLimit(100, 60)
    assert versions == list(range(1, len(MIGRATIONS) + 1))


OPEN_BOTH = """
import asyncio, sys
from pathlib import Path
from gateway.backend.store import ShareStore
from gateway.store.sqlite import SqliteStore

async def main() -> None:
    folder = Path(sys.argv[1])
    for store in (SqliteStore(folder / "gateway.db"), ShareStore(folder / "shares.db")):
        await store.open()
        await store.close()

asyncio.run(main())
"""


def test_sqlite_stores_open_while_another_process_writes(tmp_path: Path) -> None:
    """A worker opening the files while another is still creating them waits, then opens them.

    SQLite refuses the switch to WAL at once, without its busy timeout, while another
    connection writes in the old journal mode, as a worker that started first does.
    """
    writers = []
    for name in ("gateway.db", "shares.db"):
        writer = sqlite3.connect(tmp_path / name, isolation_level=None, timeout=0)
        writer.execute("CREATE TABLE first_worker (x)")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO first_worker VALUES (1)")
        writers.append(writer)
    opener = subprocess.Popen(
        [sys.executable, "-c", OPEN_BOTH, str(tmp_path)], stderr=subprocess.PIPE
    )
    time.sleep(0.5)
    for writer in writers:
        writer.execute("COMMIT")
        writer.close()
    _, errors = opener.communicate(timeout=60)

    assert (opener.returncode, errors.decode()[-300:]) == (0, "")
