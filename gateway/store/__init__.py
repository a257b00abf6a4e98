"""Where keys, history and usage are kept; the URL picks the implementation."""

from gateway.config import sqlite_path
from gateway.store.base import (
    Store,
    StoreDump,
    StoreError,
    StoreNotEmpty,
    StoreStartError,
    UsageDelta,
)


def is_store_url(url: str) -> bool:
    """True for the URLs `store.url` accepts: sqlite://PATH, postgresql://..., postgres://..."""
    path = sqlite_path(url)
    if path is not None:
        return not url.endswith("/") and path.name not in ("", ".", "..")
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str) -> Store:
    """The store for a `store.url` (not yet opened)."""
    path = sqlite_path(url)
    if path is not None:
        from gateway.store.sqlite import SqliteStore

        return SqliteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreStartError(f"no store for {url.split(':', 1)[0]!r} URLs in this build")


__all__ = [
    "Store",
    "StoreDump",
    "StoreError",
    "StoreNotEmpty",
    "StoreStartError",
    "UsageDelta",
    "is_store_url",
    "open_store",
]
