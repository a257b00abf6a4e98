"""Copying a whole store between SQLite and PostgreSQL, and the migrate command's answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.keys.model import RateLimit
from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault
from gateway.store import Store, StoreNotEmpty, UsageDelta
from gateway.store.migrate import CopyReport, copy_store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.pg import run
from tests.processes import SECRET_KEY

T0 = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)
NEXT_HOUR = datetime(2026, 12, 1, 11, tzinfo=UTC)


async def fill(store: Store) -> None:
    """Keys in every state: changed, rotated, revealed, deleted, used and unused."""
    keys = KeyService(store, KeyVault(SECRET_KEY))
    used, _ = await keys.create(
        {
            "name": "used",
            "permissions": {"get": True},
            "allowedIps": ["10.0.0.0/8"],
            "rateLimit": {"requests": 100, "perSeconds": 60},
        },
        "ops",
    )
    await keys.update(
        used.id,
        {
            "description": "busy",
            "notValidAfter": "2027-01-01",
            "rateLimit": {"requests": 5000, "perSeconds": 3600},
        },
        "ops",
    )
    await keys.rotate(used.id, {"gracePeriodSeconds": 3600}, "ops")
    await keys.reveal(used.id, "cli")
    gone, _ = await keys.create({"name": "gone", "admin": True}, "cli")
    await keys.create({"name": "idle"}, "ops")
    await store.add_usage(
        {
            used.id: UsageDelta(7, 2, T0, {HOUR: [5, 2], NEXT_HOUR: [2, 0]}),
            gone.id: UsageDelta(1, 0, T0, {HOUR: [1, 0]}),
        }
    )
    await keys.delete(gone.id, "ops")


async def make_source(folder: Path) -> str:
    """A filled SQLite store; answers its URL."""
    store = SqliteStore(folder / "source.db")
    await store.open()
    await fill(store)
    await store.close()
    return f"sqlite://{folder}/source.db"


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "source.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def postgres(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url)
    await store.open()
    yield store
    await store.close()


async def test_copy_store_moves_everything_sqlite_to_postgres_and_back(
    sqlite: SqliteStore, postgres: PostgresStore, tmp_path: Path
) -> None:
    """SQLite -> PostgreSQL -> a new SQLite file: every key, event and bucket arrives equal."""
    await fill(sqlite)
    back = SqliteStore(tmp_path / "back.db")
    await back.open()

    there = await copy_store(sqlite, postgres)
    again = await copy_store(postgres, back)
    source, middle, end = [await s.export_all() for s in (sqlite, postgres, back)]
    await back.close()

    assert there == again == CopyReport(keys=3, deleted_keys=1, events=7, buckets=3)
    assert middle == source
    assert end == source
    assert [k.rate_limit for k in end.keys] == [RateLimit(5000, 3600), None, None]


async def test_copied_keys_are_found_and_revealed(
    sqlite: SqliteStore, postgres: PostgresStore
) -> None:
    """A copied key is found by its value and reveals it, with the same secret key."""
    vault = KeyVault(SECRET_KEY)
    key, value = await KeyService(sqlite, vault).create({"name": "k"}, "ops")

    await copy_store(sqlite, postgres)
    found = await postgres.find_key(vault.lookup_hash(value))

    assert found is not None and found.id == key.id
    assert await KeyService(postgres, vault).reveal(key.id, "ops") == value


@pytest.mark.parametrize("target_kind", ["sqlite", "postgres"])
async def test_copy_store_refuses_a_target_holding_keys(
    target_kind: str, sqlite: SqliteStore, postgres: PostgresStore, tmp_path: Path
) -> None:
    """A target with a key, even a deleted one, is refused and left as it was."""
    source = SqliteStore(tmp_path / "other.db")
    await source.open()
    await fill(source)
    target: Store = sqlite if target_kind == "sqlite" else postgres
    keys = KeyService(target, KeyVault(SECRET_KEY))
    existing, _ = await keys.create({"name": "existing"}, "ops")
    await keys.delete(existing.id, "ops")
    before = await target.export_all()

    with pytest.raises(StoreNotEmpty):
        await copy_store(source, target)
    await source.close()

    assert await target.export_all() == before


def test_migrate_command_prints_the_counts(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """migrate answers 0 and prints what it copied."""
    code = main(["migrate", "--from", run(make_source(tmp_path)), "--to", pg_url])

    assert code == 0
    assert capsys.readouterr().out == (
        "copied 3 keys (1 deleted), 7 history events, 3 hourly usage buckets\n"
    )


@pytest.mark.parametrize(
    ("source", "target", "code", "message"),
    [
        ("mysql://db/x", "{pg}", 2, "--from: expected sqlite://PATH or postgresql://"),
        ("{source}", "postgresql:/one-slash", 2, "--to: expected"),
        ("{source}", "sqlite://", 2, "--to: expected"),
        ("{source}", "postgresql://gateway:pw-123@127.0.0.1:1/db", 3, "127.0.0.1:1/db"),
        ("sqlite://{tmp}/missing.db", "{pg}", 3, "no store at"),
        ("{source}", "{source}", 1, "already holds keys"),
    ],
)
def test_migrate_command_exit_codes(
    source: str,
    target: str,
    code: int,
    message: str,
    tmp_path: Path,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad URLs answer 2, an unusable store 3, a target holding keys 1."""
    names = {"source": run(make_source(tmp_path)), "pg": pg_url, "tmp": str(tmp_path)}
    argv = ["migrate", "--from", source.format(**names), "--to", target.format(**names)]

    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err
    assert "pw-123" not in err
