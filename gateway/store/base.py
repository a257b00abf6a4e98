"""The store interface: what the key service, the request path and usage need kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.keys.model import HistoryEvent, Key, UsageBucket


class StoreError(Exception):
    """The store could not do what was asked (busy, locked, unreachable, full)."""


class StoreStartError(StoreError):
    """The store cannot be opened at all; the message names the path or URL."""


class StoreNotEmpty(StoreError):
    """An import was refused because the store already holds keys."""


@dataclass
class UsageDelta:
    """Counts gathered in memory for one key since the last flush."""

    allowed: int = 0
    denied: int = 0
    last_used_at: datetime | None = None
    # Per hour start: [allowed, denied].
    hours: dict[datetime, list[int]] | None = None


@dataclass(frozen=True)
class KeyCounts:
    """How many keys the store holds in each state, at one moment."""

    active: int
    """Not deleted, and inside the validity window."""
    inactive: int
    """Not deleted, but not yet valid or expired."""
    deleted: int


@dataclass(frozen=True)
class StoreDump:
    """Everything a store holds, as `export_all` reads it and `import_all` writes it."""

    # Deleted keys too; each Key carries its usage totals.
    keys: tuple[Key, ...]
    # Key id -> when the key was deleted.
    deleted: Mapping[str, datetime]
    # Oldest first, in the order they were recorded.
    events: tuple[HistoryEvent, ...]
    # (key id, hourly bucket), by key and hour.
    buckets: tuple[tuple[str, UsageBucket], ...]


class Store(Protocol):
    """Keys, their history and their usage. Every write is durable when it returns."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError unless the store answers."""

    async def insert_key(self, key: Key, event: HistoryEvent) -> None: ...

    async def update_key(self, key: Key, event: HistoryEvent) -> None: ...

    async def delete_key(self, key_id: str, event: HistoryEvent) -> None: ...

    async def add_event(self, event: HistoryEvent) -> None: ...

    async def get_key(self, key_id: str) -> Key | None:
        """A key that is not deleted, with its usage totals."""

    async def find_key(self, lookup_hash: str) -> Key | None:
        """The live key whose value, or previous value after a rotation, has this hash."""

    async def list_keys(self) -> list[Key]: ...

    async def history(self, key_id: str) -> list[HistoryEvent]:
        """Events newest first, deleted keys included."""

    async def add_usage(self, deltas: Mapping[str, UsageDelta]) -> None:
        """Add counts in one transaction: all of it is written or none."""

    async def usage_buckets(self, key_id: str, since: datetime) -> Sequence[UsageBucket]: ...

    async def key_version(self) -> int:
        """A number that grows with every key change, from any process."""

    async def count_keys(self, now: datetime) -> KeyCounts:
        """How many keys are active at `now`, inactive (outside their window) and deleted."""

    def subscribe(self, on_change: Callable[[], None]) -> None:
        """Call on_change when another process changes a key; best effort, the cache still polls."""

    async def export_all(self) -> StoreDump:
        """Every key (deleted ones included), all history and all usage, from one snapshot."""

    async def import_all(self, dump: StoreDump) -> None:
        """Write a dump in one transaction; StoreError if this store already holds any key."""
