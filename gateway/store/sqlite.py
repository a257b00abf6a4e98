"""The embedded store: one SQLite file in WAL mode, through aiosqlite."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.keys.model import Change, HistoryEvent, Key, Permissions, RateLimit, UsageBucket
from gateway.log import STORE_LOG
from gateway.store.base import (
    KeyCounts,
    StoreDump,
    StoreError,
    StoreNotEmpty,
    StoreStartError,
    UsageDelta,
)
from gateway.store.schema import MIGRATIONS

log = logging.getLogger(STORE_LOG)

# How long a write waits for another process's lock before giving up.
BUSY_TIMEOUT_MS = 5000

_KEY_COLUMNS = (
    "k.id, k.name, k.lookup_hash, k.sealed_value, k.masked_value, k.permissions, k.admin, "
    "k.not_valid_before, k.not_valid_after, k.allowed_ips, k.description, k.created_at, "
    "k.updated_at, k.created_by, "
    "COALESCE(u.usage_count, 0), COALESCE(u.denied_count, 0), u.last_used_at, "
    "k.previous_lookup_hash, k.previous_valid_until, k.rate_limit_requests, "
    "k.rate_limit_per_seconds"
)
# Where export_all's extra deleted_at column sits, after _KEY_COLUMNS.
_DELETED_AT = 21
_KEY_SELECT = f"SELECT {_KEY_COLUMNS} FROM keys k LEFT JOIN key_usage u ON u.key_id = k.id"  # noqa: S608


def _text(moment: datetime | None) -> str | None:
    # Fixed width so that text order is time order (MAX() relies on it).
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def use_wal(db: aiosqlite.Connection) -> None:
    """Switch a connection's file to WAL, waiting for other processes opening it too.

    SQLite answers a journal mode change that meets another connection's lock with
    "database is locked" at once, without its busy timeout: workers starting
    together on one file would fail. Trying again for a few seconds is enough.
    """
    for attempt in range(100):
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            await asyncio.sleep(0.05)


class SqliteStore:
    """Store on one SQLite file; safe to share with other processes (the CLI, workers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._transaction = asyncio.Lock()

    async def open(self) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            try:
                # SECURITY: the folder holds the store and generated secrets: owner only.
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreStartError(
                    f"cannot create data folder {folder}: {exc.strerror}"
                ) from None
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await use_wal(self._db)
            # FULL: a key change acknowledged to the admin is on disk, even on power loss.
            await self._db.execute("PRAGMA synchronous = FULL")
            await self._migrate()
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreStartError(f"cannot open store {self.path}: {exc}") from None

    async def _migrate(self) -> None:
        async with self._write() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            async with db.execute("SELECT MAX(version) FROM schema_version") as cursor:
                row = await cursor.fetchone()
            current = row[0] if row and row[0] is not None else 0
            for number, script in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
                log.info("store schema migrated to version %d", number)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One IMMEDIATE transaction: the lock is taken up front, so it cannot deadlock."""
        # The one connection holds one transaction at a time: a second writer waits here
        # rather than failing with "cannot start a transaction within a transaction".
        async with self._transaction:
            db = self.db
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"store busy: {exc}") from None
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            try:
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await db.execute("ROLLBACK")
                raise StoreError(f"store write failed: {exc}") from None

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            async with self.db.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.OperationalError as exc:
            raise StoreError(f"store read failed: {exc}") from None

    async def ping(self) -> None:
        await self._rows("SELECT 1")

    async def insert_key(self, key: Key, event: HistoryEvent) -> None:
        async with self._write() as db:
            await _insert_key(db, key, deleted_at=None)
            await self._event(db, event)
            await self._bump(db)

    async def update_key(self, key: Key, event: HistoryEvent) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE keys SET name = ?, lookup_hash = ?, sealed_value = ?, masked_value = ?,"
                " permissions = ?, admin = ?, not_valid_before = ?, not_valid_after = ?,"
                " allowed_ips = ?, description = ?, updated_at = ?, previous_lookup_hash = ?,"
                " previous_valid_until = ?, rate_limit_requests = ?, rate_limit_per_seconds = ?"
                " WHERE id = ?",
                (
                    key.name,
                    key.lookup_hash,
                    key.sealed_value,
                    key.masked_value,
                    json.dumps(key.permissions.to_json()),
                    int(key.admin),
                    _text(key.not_valid_before),
                    _text(key.not_valid_after),
                    json.dumps(list(key.allowed_ips)),
                    key.description,
                    _text(key.updated_at),
                    key.previous_lookup_hash,
                    _text(key.previous_valid_until),
                    *_rate_limit_row(key.rate_limit),
                    key.id,
                ),
            )
            await self._event(db, event)
            await self._bump(db)

    async def delete_key(self, key_id: str, event: HistoryEvent) -> None:
        # The row stays (marked deleted) so that its history and usage remain readable.
        async with self._write() as db:
            await db.execute(
                "UPDATE keys SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (_text(event.at), key_id),
            )
            await self._event(db, event)
            await self._bump(db)

    async def add_event(self, event: HistoryEvent) -> None:
        async with self._write() as db:
            await self._event(db, event)

    @staticmethod
    async def _event(db: aiosqlite.Connection, event: HistoryEvent) -> None:
        changes = [{"field": c.field, "old": c.old, "new": c.new} for c in event.changes]
        await db.execute(
            "INSERT INTO key_history (key_id, at, actor, action, changes) VALUES (?, ?, ?, ?, ?)",
            (event.key_id, _text(event.at), event.actor, event.action, json.dumps(changes)),
        )

    @staticmethod
    async def _bump(db: aiosqlite.Connection) -> None:
        await db.execute("UPDATE key_version SET version = version + 1 WHERE id = 1")

    async def get_key(self, key_id: str) -> Key | None:
        rows = await self._rows(f"{_KEY_SELECT} WHERE k.id = ? AND k.deleted_at IS NULL", (key_id,))
        return _key(rows[0]) if rows else None

    async def find_key(self, lookup_hash: str) -> Key | None:
        rows = await self._rows(
            f"{_KEY_SELECT} WHERE k.lookup_hash = ? AND k.deleted_at IS NULL", (lookup_hash,)
        )
        if not rows:
            rows = await self._rows(
                f"{_KEY_SELECT} WHERE k.previous_lookup_hash = ? AND k.deleted_at IS NULL",
                (lookup_hash,),
            )
        return _key(rows[0]) if rows else None

    async def list_keys(self) -> list[Key]:
        rows = await self._rows(f"{_KEY_SELECT} WHERE k.deleted_at IS NULL ORDER BY k.created_at")
        return [_key(row) for row in rows]

    async def history(self, key_id: str) -> list[HistoryEvent]:
        rows = await self._rows(
            "SELECT key_id, at, actor, action, changes FROM key_history"
            " WHERE key_id = ? ORDER BY id DESC",
            (key_id,),
        )
        return [_history_event(row) for row in rows]

    async def add_usage(self, deltas: Mapping[str, UsageDelta]) -> None:
        async with self._write() as db:
            for key_id, delta in deltas.items():
                # Increments, never read-modify-write: other processes add to the same rows.
                await db.execute(
                    "INSERT INTO key_usage (key_id, usage_count, denied_count, last_used_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET"
                    " usage_count = usage_count + excluded.usage_count,"
                    " denied_count = denied_count + excluded.denied_count,"
                    " last_used_at = MAX(COALESCE(last_used_at, ''),"
                    " COALESCE(excluded.last_used_at, ''))",
                    (key_id, delta.allowed, delta.denied, _text(delta.last_used_at)),
                )
                for hour, (allowed, denied) in (delta.hours or {}).items():
                    await db.execute(
                        "INSERT INTO usage_hourly (key_id, hour, allowed, denied)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (key_id, hour) DO UPDATE SET"
                        " allowed = allowed + excluded.allowed,"
                        " denied = denied + excluded.denied",
                        (key_id, _text(hour), allowed, denied),
                    )

    async def usage_buckets(self, key_id: str, since: datetime) -> list[UsageBucket]:
        rows = await self._rows(
            "SELECT hour, allowed, denied FROM usage_hourly"
            " WHERE key_id = ? AND hour >= ? ORDER BY hour",
            (key_id, _text(since)),
        )
        return [UsageBucket(datetime.fromisoformat(r[0]), r[1], r[2]) for r in rows]

    async def key_version(self) -> int:
        rows = await self._rows("SELECT version FROM key_version WHERE id = 1")
        return int(rows[0][0])

    async def count_keys(self, now: datetime) -> KeyCounts:
        # Times are fixed-width UTC text, so comparing the text compares the times.
        at = _text(now)
        rows = await self._rows(
            "SELECT COALESCE(SUM(deleted_at IS NULL AND COALESCE(not_valid_before <= ?, 1)"
            " AND COALESCE(not_valid_after > ?, 1)), 0),"
            " COALESCE(SUM(deleted_at IS NOT NULL), 0), COUNT(*) FROM keys",
            (at, at),
        )
        active, deleted, total = (int(n) for n in rows[0])
        return KeyCounts(active=active, inactive=total - active - deleted, deleted=deleted)

    def subscribe(self, on_change: Callable[[], None]) -> None:
        """Nothing to listen to: SQLite has no notifications, the key cache's poll sees changes."""

    async def export_all(self) -> StoreDump:
        # One read transaction, so that keys, history and usage are from one moment.
        async with self._transaction:
            return await self._export_all()

    async def _export_all(self) -> StoreDump:
        await self.db.execute("BEGIN")
        try:
            keys = await self._rows(
                f"SELECT {_KEY_COLUMNS}, k.deleted_at FROM keys k"  # noqa: S608
                " LEFT JOIN key_usage u ON u.key_id = k.id ORDER BY k.created_at, k.id"
            )
            events = await self._rows(
                "SELECT key_id, at, actor, action, changes FROM key_history ORDER BY id"
            )
            buckets = await self._rows(
                "SELECT key_id, hour, allowed, denied FROM usage_hourly ORDER BY key_id, hour"
            )
        finally:
            await self.db.execute("COMMIT")
        return StoreDump(
            keys=tuple(_key(row) for row in keys),
            deleted={
                row[0]: datetime.fromisoformat(row[_DELETED_AT]) for row in keys if row[_DELETED_AT]
            },
            events=tuple(_history_event(row) for row in events),
            buckets=tuple(
                (r[0], UsageBucket(datetime.fromisoformat(r[1]), r[2], r[3])) for r in buckets
            ),
        )

    async def import_all(self, dump: StoreDump) -> None:
        async with self._write() as db:
            async with db.execute("SELECT 1 FROM keys LIMIT 1") as cursor:
                if await cursor.fetchone() is not None:
                    raise StoreNotEmpty(f"{self.path} already holds keys")
            for key in dump.keys:
                await _insert_key(db, key, deleted_at=dump.deleted.get(key.id))
                await db.execute(
                    "INSERT INTO key_usage (key_id, usage_count, denied_count, last_used_at)"
                    " VALUES (?, ?, ?, ?)",
                    (key.id, key.usage_count, key.denied_count, _text(key.last_used_at)),
                )
            for event in dump.events:
                await self._event(db, event)
            await db.executemany(
                "INSERT INTO usage_hourly (key_id, hour, allowed, denied) VALUES (?, ?, ?, ?)",
                [(key_id, _text(b.start), b.allowed, b.denied) for key_id, b in dump.buckets],
            )
            await self._bump(db)


async def _insert_key(db: aiosqlite.Connection, key: Key, deleted_at: datetime | None) -> None:
    """One keys row, every column: a new key's rotation columns are simply empty."""
    await db.execute(
        "INSERT INTO keys (id, name, lookup_hash, sealed_value, masked_value, permissions,"
        " admin, not_valid_before, not_valid_after, allowed_ips, description, created_at,"
        " updated_at, created_by, previous_lookup_hash, previous_valid_until, deleted_at,"
        " rate_limit_requests, rate_limit_per_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key.id,
            key.name,
            key.lookup_hash,
            key.sealed_value,
            key.masked_value,
            json.dumps(key.permissions.to_json()),
            int(key.admin),
            _text(key.not_valid_before),
            _text(key.not_valid_after),
            json.dumps(list(key.allowed_ips)),
            key.description,
            _text(key.created_at),
            _text(key.updated_at),
            key.created_by,
            key.previous_lookup_hash,
            _text(key.previous_valid_until),
            _text(deleted_at),
            *_rate_limit_row(key.rate_limit),
        ),
    )


def _rate_limit_row(limit: RateLimit | None) -> tuple[int | None, int | None]:
    return (None, None) if limit is None else (limit.requests, limit.per_seconds)


def _rate_limit(requests: int | None, per_seconds: int | None) -> RateLimit | None:
    if requests is None or per_seconds is None:
        return None
    return RateLimit(int(requests), int(per_seconds))


def _history_event(row: sqlite3.Row) -> HistoryEvent:
    return HistoryEvent(
        key_id=row[0],
        at=datetime.fromisoformat(row[1]),
        actor=row[2],
        action=row[3],
        changes=tuple(Change(c["field"], c["old"], c["new"]) for c in json.loads(row[4])),
    )


def _key(row: sqlite3.Row) -> Key:
    last_used = row[16] or None
    return Key(
        id=row[0],
        name=row[1],
        lookup_hash=row[2],
        sealed_value=bytes(row[3]),
        masked_value=row[4],
        permissions=Permissions(**json.loads(row[5])),
        admin=bool(row[6]),
        not_valid_before=_moment(row[7]),
        not_valid_after=_moment(row[8]),
        allowed_ips=tuple(json.loads(row[9])),
        description=row[10],
        created_at=datetime.fromisoformat(row[11]),
        updated_at=datetime.fromisoformat(row[12]),
        created_by=row[13],
        usage_count=int(row[14]),
        denied_count=int(row[15]),
        last_used_at=_moment(last_used),
        previous_lookup_hash=row[17],
        previous_valid_until=_moment(row[18]),
        rate_limit=_rate_limit(row[19], row[20]),
    )
