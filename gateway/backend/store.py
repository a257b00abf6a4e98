"""The reference backend's shares, kept in their own SQLite file."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import aiosqlite

from gateway.shares import (
    BOOLEAN_FIELDS,
    CREATE_FIELDS,
    SHARE_FIELDS,
    SORT_FIELDS,
    ListQuery,
    apply_create_defaults,
    apply_update_defaults,
    snake_case,
)
from gateway.store.sqlite import use_wal

# Each column is its field's snake_case name, which is also how LIST names it to sort.
_COLUMNS = {name: snake_case(name) for name in SHARE_FIELDS}
_WRITABLE = {name: snake_case(name) for name in CREATE_FIELDS}
_SELECT = ", ".join(_COLUMNS.values())
_SORT_COLUMNS = {column: column for column in _COLUMNS.values() if column in SORT_FIELDS}
_DIRECTIONS = {"asc": "ASC", "desc": "DESC"}

# content_id is text because the Share answers it as a string, so sorting on it is
# textual. space_id has no declared type: SQLite then keeps a string as a string and
# an integer as an integer, and the share answers it as it was given.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    content_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    space_id,
    space_key TEXT,
    name TEXT,
    description TEXT,
    expiration INTEGER,
    show_comments INTEGER NOT NULL,
    allow_add_comment INTEGER NOT NULL,
    show_attachments INTEGER NOT NULL,
    allow_add_attachment INTEGER NOT NULL,
    allow_remove_unsupported_macros INTEGER NOT NULL,
    show_macros_placeholder INTEGER NOT NULL,
    allow_share_child_pages INTEGER NOT NULL,
    show_labels INTEGER NOT NULL,
    selected_users_config TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_content_id ON shares (content_id);
CREATE INDEX IF NOT EXISTS shares_space_key ON shares (space_key);
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _to_row(fields: Mapping[str, object]) -> dict[str, object]:
    row: dict[str, object] = {}
    for name, value in fields.items():
        if name == "contentId":
            value = str(value)
        elif name == "selectedUsersConfig" and value is not None:
            value = json.dumps(value)
        row[_WRITABLE[name]] = value
    return row


def _to_share(row: sqlite3.Row) -> dict[str, object]:
    share = {name: row[column] for name, column in _COLUMNS.items()}
    for name in BOOLEAN_FIELDS:
        share[name] = bool(share[name])
    config = share["selectedUsersConfig"]
    if isinstance(config, str):
        share["selectedUsersConfig"] = json.loads(config)
    return share


class ShareStore:
    """Shares on one SQLite file in WAL mode, answered as the Web API's Share JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the share store is not open")
        return self._db

    async def open(self) -> None:
        """Open the file, creating it and its table when missing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every method is one statement, run whole on aiosqlite's thread,
        # so coroutines sharing the connection never see each other's transactions.
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        await self._db.execute("PRAGMA busy_timeout=5000")
        # Workers started together each open this file with their own embedded backend.
        await use_wal(self._db)
        await self._db.executescript(_SCHEMA)

    async def close(self) -> None:
        """Close the file; the store can be opened again."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _one(self, sql: str, params: Mapping[str, object]) -> dict[str, object] | None:
        rows = list(await self.db.execute_fetchall(sql, params))
        return _to_share(rows[0]) if rows else None

    async def create(self, fields: Mapping[str, object]) -> dict[str, object]:
        """Store a new share from checked CREATE fields; answers it in full."""
        now = _now_ms()
        row = _to_row(apply_create_defaults(fields))
        row.update(uuid=str(uuid.uuid4()), created_at=now, updated_at=now)

        columns = ", ".join(row)
        values = ", ".join(f":{column}" for column in row)
        # SECURITY: the column names come from _COLUMNS, never from the request.
        sql = f"INSERT INTO shares ({columns}) VALUES ({values}) RETURNING {_SELECT}"  # noqa: S608
        share = await self._one(sql, row)
        if share is None:
            raise RuntimeError("INSERT ... RETURNING answered no row")
        return share

    async def get(self, share_uuid: str) -> dict[str, object] | None:
        """The share with this uuid, or None."""
        sql = f"SELECT {_SELECT} FROM shares WHERE uuid = :uuid"  # noqa: S608
        return await self._one(sql, {"uuid": share_uuid})

    async def list(self, query: ListQuery) -> list[dict[str, object]]:
        """Shares matching the query's filters, sorted, one page of them.

        When both contents and spaceKeys are given a share must match both: each
        filter narrows the list, as each would alone.
        """
        where: list[str] = []
        params: list[object] = []
        for column, wanted in (("content_id", query.contents), ("space_key", query.space_keys)):
            if wanted:
                where.append(f"{column} IN ({', '.join('?' * len(wanted))})")
                params.extend(wanted)
        condition = f"WHERE {' AND '.join(where)}" if where else ""

        # SECURITY: sort and order are looked up in fixed tables, so a value that is
        # not a known column cannot reach the SQL; ties fall back to id for stable pages.
        column = _SORT_COLUMNS[query.sort]
        direction = _DIRECTIONS[query.sort_order]
        order = f"{column} {direction}" if column == "id" else f"{column} {direction}, id ASC"

        sql = f"SELECT {_SELECT} FROM shares {condition} ORDER BY {order} LIMIT ? OFFSET ?"  # noqa: S608
        rows = await self.db.execute_fetchall(sql, [*params, query.limit, query.offset])
        return [_to_share(row) for row in rows]

    async def update(
        self, share_uuid: str, fields: Mapping[str, object]
    ) -> dict[str, object] | None:
        """Change the given fields of a share, keep the others; None if there is no such share."""
        row = _to_row(apply_update_defaults(fields))
        row["updated_at"] = _now_ms()

        changes = ", ".join(f"{column} = :{column}" for column in row)
        # SECURITY: the column names come from _COLUMNS, never from the request.
        sql = f"UPDATE shares SET {changes} WHERE uuid = :uuid RETURNING {_SELECT}"  # noqa: S608
        return await self._one(sql, {**row, "uuid": share_uuid})

    async def delete(self, share_uuid: str) -> bool:
        """Remove a share; False if there was no such share."""
        rows = await self.db.execute_fetchall(
            "DELETE FROM shares WHERE uuid = ? RETURNING id", [share_uuid]
        )
        return bool(list(rows))
