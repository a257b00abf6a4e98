"""Consistent copies of the SQLite store, taken while the gateway runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.base import StoreError

# Pages copied per step; between steps other connections may write, and the
# backup restarts on its own if they do, so the copy is always consistent.
_PAGES_PER_STEP = 256


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the store at `source` into a new file `target` with SQLite's online backup.

    Answers the number of pages copied. The target must not exist, so that a
    backup never overwrites another one by mistake.
    """
    if not source.is_file():
        raise StoreError(f"no store at {source}")
    if target.exists():
        raise StoreError(f"{target} exists; choose a new file")
    partial = target.with_name(target.name + ".partial")
    try:
        with (
            sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src,
            sqlite3.connect(partial) as dst,
        ):
            src.backup(dst, pages=_PAGES_PER_STEP)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            # A backup is one self-contained file: no WAL beside it.
            dst.execute("PRAGMA journal_mode = DELETE")
        src.close()
        dst.close()
        partial.rename(target)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backup of {source} failed: {exc}") from None
    return pages
