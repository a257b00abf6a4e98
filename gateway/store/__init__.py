"""Where keys, history and usage are kept; the URL picks the implementation."""

from gateway.store.base import Store, StoreError, StoreStartError, UsageDelta


def open_store(url: str) -> Store:
    """The store for a `store.url` (not yet opened)."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        from gateway.store.sqlite import SqliteStore

        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    raise StoreStartError(f"no store for {url.split(':', 1)[0]!r} URLs in this build")


__all__ = ["Store", "StoreError", "StoreStartError", "UsageDelta", "open_store"]
