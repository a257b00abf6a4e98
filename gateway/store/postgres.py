"""The shared store: PostgreSQL through an asyncpg pool, for several gateways at once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg

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
from gateway.store.postgres_listen import CONNECT_TIMEOUT_S, PG_ERRORS, KeyChangeListener
from gateway.store.postgres_schema import MIGRATION_LOCK, MIGRATIONS, SCHEMA_VERSION_TABLE

log = logging.getLogger(STORE_LOG)

# Every key write notifies this channel, in the transaction of the write.
CHANNEL = "share_gateway_keys"
APPLICATION = "share-gateway"
POOL_MAX_SIZE = 10
COMMAND_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 10.0

# A URL asyncpg cannot parse raises ValueError at start-up.
_START_ERRORS: tuple[type[BaseException], ...] = (*PG_ERRORS, ValueError)

_KEY_COLUMNS = (
    "k.id, k.name, k.lookup_hash, k.sealed_value, k.masked_value, k.permissions, k.admin, "
    "k.not_valid_before, k.not_valid_after, k.allowed_ips, k.description, k.created_at, "
    "k.updated_at, k.created_by, "
    "COALESCE(u.usage_count, 0), COALESCE(u.denied_count, 0), u.last_used_at, "
    "k.previous_lookup_hash, k.previous_valid_until, k.deleted_at, k.rate_limit_requests, "
    "k.rate_limit_per_seconds"
)
_KEY_SELECT = f"SELECT {_KEY_COLUMNS} FROM keys k LEFT JOIN key_usage u ON u.key_id = k.id"  # noqa: S608
_HISTORY_INSERT = (
    "INSERT INTO key_history (key_id, at, actor, action, changes) VALUES ($1, $2, $3, $4, $5)"
)


def describe(url: str) -> str:
    """The URL as messages may show it: no password, no query."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    database = parts.path.lstrip("/") or parts.username or ""
    return f"{parts.scheme}://{user}{parts.hostname or 'localhost'}:{port}/{database}"


def _scrubbed(exc: BaseException, url: str) -> str:
    # SECURITY: driver messages do not quote the DSN today; make sure one never leaks it.
    text = str(exc) or type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


async def _init_connection(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


class PostgresStore:
    """Store on one PostgreSQL database, shared by every gateway that names it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = describe(url)
        self._pool: asyncpg.Pool | None = None
        self._listener: KeyChangeListener | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=POOL_MAX_SIZE,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                init=_init_connection,
                server_settings={"application_name": APPLICATION},
            )
            await self._migrate()
        except _START_ERRORS as exc:
            await self.close()
            raise StoreStartError(
                f"cannot open store {self.where}: {_scrubbed(exc, self.url)}"
            ) from None

    async def _migrate(self) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as connection, connection.transaction():
            # Held to the end of this transaction: a second instance waits here, then
            # finds the migrations applied.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await connection.execute(SCHEMA_VERSION_TABLE)
            current = await connection.fetchval(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version"
            )
            for number, script in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                await connection.execute(script)
                await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
                log.info("store schema migrated to version %d", number)

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except PG_ERRORS:
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    @asynccontextmanager
    async def _transaction(self, **options: Any) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire() as connection, connection.transaction(**options):
                yield connection
        except PG_ERRORS as exc:
            raise StoreError(f"store write failed ({self.where}): {exc}") from None

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(sql, *args))
        except PG_ERRORS as exc:
            raise StoreError(f"store read failed ({self.where}): {exc}") from None

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def insert_key(self, key: Key, event: HistoryEvent) -> None:
        async with self._transaction() as connection:
            await connection.execute(
                "INSERT INTO keys (id, name, lookup_hash, sealed_value, masked_value, permissions,"
                " admin, not_valid_before, not_valid_after, allowed_ips, description, created_at,"
                " updated_at, created_by, previous_lookup_hash, previous_valid_until, deleted_at,"
                " rate_limit_requests, rate_limit_per_seconds)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
                " $17, $18, $19)",
                *_key_row(key),
            )
            await connection.execute(_HISTORY_INSERT, *_event_row(event))
            await _changed(connection)

    async def update_key(self, key: Key, event: HistoryEvent) -> None:
        async with self._transaction() as connection:
            await connection.execute(
                "UPDATE keys SET name = $2, lookup_hash = $3, sealed_value = $4,"
                " masked_value = $5, permissions = $6, admin = $7, not_valid_before = $8,"
                " not_valid_after = $9, allowed_ips = $10, description = $11, updated_at = $12,"
                " previous_lookup_hash = $13, previous_valid_until = $14,"
                " rate_limit_requests = $15, rate_limit_per_seconds = $16 WHERE id = $1",
                key.id,
                key.name,
                key.lookup_hash,
                key.sealed_value,
                key.masked_value,
                key.permissions.to_json(),
                key.admin,
                key.not_valid_before,
                key.not_valid_after,
                list(key.allowed_ips),
                key.description,
                key.updated_at,
                key.previous_lookup_hash,
                key.previous_valid_until,
                *_rate_limit_row(key.rate_limit),
            )
            await connection.execute(_HISTORY_INSERT, *_event_row(event))
            await _changed(connection)

    async def delete_key(self, key_id: str, event: HistoryEvent) -> None:
        # The row stays (marked deleted) so that its history and usage remain readable.
        async with self._transaction() as connection:
            await connection.execute(
                "UPDATE keys SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
                key_id,
                event.at,
            )
            await connection.execute(_HISTORY_INSERT, *_event_row(event))
            await _changed(connection)

    async def add_event(self, event: HistoryEvent) -> None:
        async with self._transaction() as connection:
            await connection.execute(_HISTORY_INSERT, *_event_row(event))

    async def get_key(self, key_id: str) -> Key | None:
        rows = await self._fetch(f"{_KEY_SELECT} WHERE k.id = $1 AND k.deleted_at IS NULL", key_id)
        return _key(rows[0]) if rows else None

    async def find_key(self, lookup_hash: str) -> Key | None:
        # The current value wins over another key's previous value.
        rows = await self._fetch(
            f"{_KEY_SELECT} WHERE (k.lookup_hash = $1 OR k.previous_lookup_hash = $1)"
            " AND k.deleted_at IS NULL ORDER BY k.lookup_hash = $1 DESC LIMIT 1",
            lookup_hash,
        )
        return _key(rows[0]) if rows else None

    async def list_keys(self) -> list[Key]:
        rows = await self._fetch(
            f'{_KEY_SELECT} WHERE k.deleted_at IS NULL ORDER BY k.created_at, k.id COLLATE "C"'
        )
        return [_key(row) for row in rows]

    async def history(self, key_id: str) -> list[HistoryEvent]:
        rows = await self._fetch(
            "SELECT key_id, at, actor, action, changes FROM key_history"
            " WHERE key_id = $1 ORDER BY id DESC",
            key_id,
        )
        return [_event(row) for row in rows]

    async def add_usage(self, deltas: Mapping[str, UsageDelta]) -> None:
        # Rows are locked in key order, then hour order: two gateways flushing at once
        # take their locks in the same order and cannot deadlock.
        totals = [
            (key_id, d.allowed, d.denied, d.last_used_at) for key_id, d in sorted(deltas.items())
        ]
        hours = sorted(
            (key_id, hour, allowed, denied)
            for key_id, delta in deltas.items()
            for hour, (allowed, denied) in (delta.hours or {}).items()
        )
        if not totals:
            return
        async with self._transaction() as connection:
            # Increments, never read-modify-write: other gateways add to the same rows.
            await connection.executemany(
                "INSERT INTO key_usage (key_id, usage_count, denied_count, last_used_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO UPDATE SET"
                " usage_count = key_usage.usage_count + EXCLUDED.usage_count,"
                " denied_count = key_usage.denied_count + EXCLUDED.denied_count,"
                " last_used_at = GREATEST(key_usage.last_used_at, EXCLUDED.last_used_at)",
                totals,
            )
            if hours:
                await connection.executemany(
                    "INSERT INTO usage_hourly (key_id, hour, allowed, denied)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (key_id, hour) DO UPDATE SET"
                    " allowed = usage_hourly.allowed + EXCLUDED.allowed,"
                    " denied = usage_hourly.denied + EXCLUDED.denied",
                    hours,
                )

    async def usage_buckets(self, key_id: str, since: datetime) -> list[UsageBucket]:
        rows = await self._fetch(
            "SELECT hour, allowed, denied FROM usage_hourly"
            " WHERE key_id = $1 AND hour >= $2 ORDER BY hour",
            key_id,
            since,
        )
        return [UsageBucket(row[0], int(row[1]), int(row[2])) for row in rows]

    async def key_version(self) -> int:
        rows = await self._fetch("SELECT version FROM key_version WHERE id = 1")
        return int(rows[0][0])

    async def count_keys(self, now: datetime) -> KeyCounts:
        rows = await self._fetch(
            "SELECT count(*) FILTER (WHERE deleted_at IS NULL"
            " AND (not_valid_before IS NULL OR not_valid_before <= $1)"
            " AND (not_valid_after IS NULL OR not_valid_after > $1)),"
            " count(*) FILTER (WHERE deleted_at IS NOT NULL), count(*) FROM keys",
            now,
        )
        active, deleted, total = (int(n) for n in rows[0])
        return KeyCounts(active=active, inactive=total - active - deleted, deleted=deleted)

    def subscribe(self, on_change: Callable[[], None]) -> None:
        if self._listener is None:
            self._listener = KeyChangeListener(self.url, self.where, CHANNEL)
            self._listener.start()
        self._listener.callbacks.append(on_change)

    async def export_all(self) -> StoreDump:
        # One snapshot, so that keys, history and usage are from one moment.
        async with self._transaction(isolation="repeatable_read", readonly=True) as connection:
            # COLLATE "C": byte order, as SQLite sorts, whatever the database's collation.
            keys = await connection.fetch(f'{_KEY_SELECT} ORDER BY k.created_at, k.id COLLATE "C"')
            events = await connection.fetch(
                "SELECT key_id, at, actor, action, changes FROM key_history ORDER BY id"
            )
            buckets = await connection.fetch(
                "SELECT key_id, hour, allowed, denied FROM usage_hourly"
                ' ORDER BY key_id COLLATE "C", hour'
            )
        return StoreDump(
            keys=tuple(_key(row) for row in keys),
            deleted={row[0]: row[19] for row in keys if row[19] is not None},
            events=tuple(_event(row) for row in events),
            buckets=tuple((r[0], UsageBucket(r[1], int(r[2]), int(r[3]))) for r in buckets),
        )

    async def import_all(self, dump: StoreDump) -> None:
        async with self._transaction() as connection:
            # Conflicts with itself: of two imports at once, the second sees the first's keys.
            await connection.execute("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")
            if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM keys)"):
                raise StoreNotEmpty(f"{self.where} already holds keys")
            await connection.executemany(
                "INSERT INTO keys (id, name, lookup_hash, sealed_value, masked_value, permissions,"
                " admin, not_valid_before, not_valid_after, allowed_ips, description, created_at,"
                " updated_at, created_by, previous_lookup_hash, previous_valid_until, deleted_at,"
                " rate_limit_requests, rate_limit_per_seconds)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
                " $17, $18, $19)",
                [_key_row(key, dump.deleted.get(key.id)) for key in dump.keys],
            )
            await connection.executemany(
                "INSERT INTO key_usage (key_id, usage_count, denied_count, last_used_at)"
                " VALUES ($1, $2, $3, $4)",
                [(k.id, k.usage_count, k.denied_count, k.last_used_at) for k in dump.keys],
            )
            # One after another, so that the ids keep the order the events were recorded in.
            await connection.executemany(_HISTORY_INSERT, [_event_row(e) for e in dump.events])
            await connection.executemany(
                "INSERT INTO usage_hourly (key_id, hour, allowed, denied) VALUES ($1, $2, $3, $4)",
                [(key_id, b.start, b.allowed, b.denied) for key_id, b in dump.buckets],
            )
            await _changed(connection)


async def _changed(connection: asyncpg.Connection) -> None:
    """Move the change counter and tell every listening gateway, both at commit."""
    version = await connection.fetchval(
        "UPDATE key_version SET version = version + 1 WHERE id = 1 RETURNING version"
    )
    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, str(version))


def _key_row(key: Key, deleted_at: datetime | None = None) -> tuple[Any, ...]:
    return (
        key.id,
        key.name,
        key.lookup_hash,
        key.sealed_value,
        key.masked_value,
        key.permissions.to_json(),
        key.admin,
        key.not_valid_before,
        key.not_valid_after,
        list(key.allowed_ips),
        key.description,
        key.created_at,
        key.updated_at,
        key.created_by,
        key.previous_lookup_hash,
        key.previous_valid_until,
        deleted_at,
        *_rate_limit_row(key.rate_limit),
    )


def _rate_limit_row(limit: RateLimit | None) -> tuple[int | None, int | None]:
    return (None, None) if limit is None else (limit.requests, limit.per_seconds)


def _event_row(event: HistoryEvent) -> tuple[Any, ...]:
    changes = [{"field": c.field, "old": c.old, "new": c.new} for c in event.changes]
    return (event.key_id, event.at, event.actor, event.action, changes)


def _event(row: asyncpg.Record) -> HistoryEvent:
    return HistoryEvent(
        key_id=row[0],
        at=row[1],
        actor=row[2],
        action=row[3],
        changes=tuple(Change(c["field"], c["old"], c["new"]) for c in row[4]),
    )


def _key(row: asyncpg.Record) -> Key:
    return Key(
        id=row[0],
        name=row[1],
        lookup_hash=row[2],
        sealed_value=bytes(row[3]),
        masked_value=row[4],
        permissions=Permissions(**row[5]),
        admin=row[6],
        not_valid_before=row[7],
        not_valid_after=row[8],
        allowed_ips=tuple(row[9]),
        description=row[10],
        created_at=row[11],
        updated_at=row[12],
        created_by=row[13],
        usage_count=int(row[14]),
        denied_count=int(row[15]),
        last_used_at=row[16],
        previous_lookup_hash=row[17],
        previous_valid_until=row[18],
        rate_limit=None if row[20] is None else RateLimit(row[20], row[21]),
    )
