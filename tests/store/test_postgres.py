"""The PostgreSQL store on a real server: schema, keys, history, usage and notifications."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from gateway.keys.model import Key, RateLimit
from gateway.keys.service import KeyService
from gateway.keys.values import KeyVault
from gateway.store import StoreError, StoreStartError, UsageDelta, open_store
from gateway.store.postgres import PostgresStore
from gateway.store.postgres_listen import listen_application_name
from gateway.store.postgres_schema import MIGRATIONS
from tests import pg
from tests.processes import SECRET_KEY

T0 = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)
NEXT_HOUR = datetime(2026, 12, 1, 11, tzinfo=UTC)


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(pg_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def other(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A second store on the same database, standing in for another gateway."""
    opened = PostgresStore(pg_url)
    await opened.open()
    yield opened
    await opened.close()


def service(store: PostgresStore) -> KeyService:
    return KeyService(store, KeyVault(SECRET_KEY))


def schema_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["search_path"][0]


async def until(condition: Callable[[], bool], within_s: float) -> bool:
    """Poll `condition` until it holds or the time is up; answer whether it held."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def test_open_store_picks_postgres_for_both_schemes(pg_url: str) -> None:
    """postgresql:// and postgres:// URLs both open a PostgresStore."""
    stores = [open_store(pg_url), open_store(pg_url.replace("postgresql://", "postgres://"))]

    assert [type(s) for s in stores] == [PostgresStore, PostgresStore]


async def test_open_migrates_once_when_two_open_at_once(pg_url: str, pg_database: str) -> None:
    """Two stores opening together on an empty schema apply each migration exactly once."""
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    await asyncio.gather(first.open(), second.open())
    await first.close()
    await second.close()
    again = PostgresStore(pg_url)
    await again.open()
    await again.close()

    rows = await pg.fetch(
        f"{pg.SERVER}/{pg_database}",
        f'SELECT version FROM "{schema_of(pg_url)}".schema_version ORDER BY version',  # noqa: S608
    )
    assert [row[0] for row in rows] == list(range(1, len(MIGRATIONS) + 1))


async def test_open_refuses_an_unreachable_server_naming_it_without_password() -> None:
    """Connection refused stops start-up with the host and database, never the password."""
    store = PostgresStore("postgresql://gateway:hunter2-secret@127.0.0.1:1/share_gateway")

    with pytest.raises(StoreStartError) as raised:
        await store.open()

    message = str(raised.value)
    assert "127.0.0.1:1/share_gateway" in message
    assert "hunter2-secret" not in message


async def test_open_refuses_a_missing_database_naming_it(pg_database: str) -> None:
    """A database that does not exist stops start-up with its name."""
    store = PostgresStore(f"{pg.SERVER}/{pg_database}_missing")

    with pytest.raises(StoreStartError, match=f"{pg_database}_missing"):
        await store.open()


async def test_store_raises_store_error_once_closed(store: PostgresStore) -> None:
    """A closed store answers StoreError, which readiness and the usage flush rely on."""
    await store.close()

    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.add_usage({"k": UsageDelta(1, 0, T0, {HOUR: [1, 0]})})


async def test_keys_round_trip_every_field(store: PostgresStore) -> None:
    """A created key reads back equal, by id, by value and in the list."""
    keys = service(store)
    key, value = await keys.create(
        {
            "name": "ci",
            "permissions": {"get": True, "list": True},
            "admin": True,
            "notValidBefore": "2026-01-01T00:00:00Z",
            "notValidAfter": "2027-01-01T00:00:00.250000Z",
            "allowedIps": ["10.0.0.0/8", "192.168.1.10-192.168.1.20", "2001:db8::1"],
            "description": "deploys",
        },
        "ops",
    )

    assert await store.get_key(key.id) == key
    assert await store.find_key(keys.vault.lookup_hash(value)) == key
    assert await store.list_keys() == [key]
    assert keys.vault.open((await keys.get(key.id)).sealed_value, key.id) == value


async def test_delete_is_soft_keeping_history_and_usage(store: PostgresStore) -> None:
    """A deleted key is gone from lookups and the list, but its history and usage stay."""
    keys = service(store)
    key, value = await keys.create({"name": "gone"}, "ops")
    await store.add_usage({key.id: UsageDelta(2, 1, T0, {HOUR: [2, 1]})})
    await keys.delete(key.id, "ops")

    dump = await store.export_all()
    assert await store.get_key(key.id) is None
    assert await store.find_key(keys.vault.lookup_hash(value)) is None
    assert await store.list_keys() == []
    assert [e.action for e in await store.history(key.id)] == ["deleted", "created"]
    assert [(b.allowed, b.denied) for b in await store.usage_buckets(key.id, HOUR)] == [(2, 1)]
    assert [(k.id, k.usage_count) for k in dump.keys] == [(key.id, 2)]
    assert list(dump.deleted) == [key.id]


async def test_history_is_newest_first(store: PostgresStore) -> None:
    """Every act on a key is recorded, newest first, updates with old and new values."""
    keys = service(store)
    key, _ = await keys.create({"name": "k"}, "ops")
    await keys.update(key.id, {"name": "k2"}, "ops")
    await keys.reveal(key.id, "cli")
    await keys.rotate(key.id, {"gracePeriodSeconds": 60}, "ops")
    await keys.delete(key.id, "ops")

    events = await store.history(key.id)

    assert [(e.action, e.actor) for e in events] == [
        ("deleted", "ops"),
        ("rotated", "ops"),
        ("revealed", "cli"),
        ("updated", "ops"),
        ("created", "ops"),
    ]
    assert [(c.field, c.old, c.new) for c in events[3].changes] == [("name", "k", "k2")]


async def test_find_key_answers_the_previous_value_during_grace(store: PostgresStore) -> None:
    """After a rotation with a grace period both values find the key; after one without, not."""
    keys = service(store)
    key, old_value = await keys.create({"name": "k"}, "ops")
    rotated, new_value = await keys.rotate(key.id, {"gracePeriodSeconds": 60}, "ops")

    found = [await store.find_key(keys.vault.lookup_hash(v)) for v in (old_value, new_value)]
    await keys.rotate(key.id, {"gracePeriodSeconds": 0}, "ops")

    assert found == [rotated, rotated]
    assert await store.find_key(keys.vault.lookup_hash(old_value)) is None


async def test_key_version_grows_with_each_change(store: PostgresStore) -> None:
    """Create, update and delete each move the change counter; a reveal does not."""
    keys = service(store)
    versions = [await store.key_version()]
    key, _ = await keys.create({"name": "k"}, "test")
    versions.append(await store.key_version())
    await keys.update(key.id, {"name": "k2"}, "test")
    versions.append(await store.key_version())
    await keys.reveal(key.id, "test")
    versions.append(await store.key_version())
    await keys.delete(key.id, "test")
    versions.append(await store.key_version())

    assert versions == [0, 1, 2, 2, 3]


async def test_usage_batches_add_up_keeping_the_latest_use(store: PostgresStore) -> None:
    """Two batches for one key sum their counts and buckets and keep the latest use."""
    key, _ = await service(store).create({"name": "k"}, "test")
    later = datetime(2026, 12, 1, 11, 45, tzinfo=UTC)

    await store.add_usage({key.id: UsageDelta(3, 1, later, {HOUR: [2, 1], NEXT_HOUR: [1, 0]})})
    await store.add_usage({key.id: UsageDelta(2, 4, T0, {HOUR: [2, 4]})})
    await store.add_usage({key.id: UsageDelta(0, 1, None, {HOUR: [0, 1]})})
    stored = await store.get_key(key.id)
    buckets = await store.usage_buckets(key.id, HOUR)

    assert stored is not None
    assert (stored.usage_count, stored.denied_count, stored.last_used_at) == (5, 6, later)
    assert [(b.start, b.allowed, b.denied) for b in buckets] == [
        (HOUR, 4, 6),
        (NEXT_HOUR, 1, 0),
    ]


async def test_usage_from_two_stores_at_once_sums_exactly(
    store: PostgresStore, other: PostgresStore
) -> None:
    """Many concurrent flushes from two stores over the same keys lose and double nothing."""
    keys = [(await service(store).create({"name": f"k{n}"}, "test"))[0] for n in range(5)]

    def batch(order: list[Key], n: int) -> dict[str, UsageDelta]:
        return {k.id: UsageDelta(n, 1, T0, {HOUR: [n, 1], NEXT_HOUR: [1, 0]}) for k in order}

    # Opposite key orders in the two stores: a flush that locked rows as given would deadlock.
    flushes = [
        target.add_usage(batch(order, n))
        for n in range(1, 41)
        for target, order in ((store, keys), (other, keys[::-1]))
    ]
    await asyncio.gather(*flushes)

    expected_allowed = 2 * sum(range(1, 41))
    for key in keys:
        stored = await store.get_key(key.id)
        buckets = await store.usage_buckets(key.id, HOUR)
        assert stored is not None
        assert (stored.usage_count, stored.denied_count) == (expected_allowed, 80)
        assert [(b.allowed, b.denied) for b in buckets] == [(expected_allowed, 80), (80, 0)]


async def test_store_rows_never_hold_a_value(store: PostgresStore, pg_database: str) -> None:
    """Key values are sealed at rest: no table holds one in plain text."""
    keys = service(store)
    values = [(await keys.create({"name": f"k{n}"}, "ops"))[1] for n in range(3)]

    schema = schema_of(store.url)
    rows = await pg.fetch(
        f"{pg.SERVER}/{pg_database}",
        f'SELECT k::text FROM "{schema}".keys k'  # noqa: S608
        f' UNION ALL SELECT h::text FROM "{schema}".key_history h',
    )
    stored = "".join(row[0] for row in rows)
    assert len(rows) == 6
    for secret in [*values, SECRET_KEY]:
        assert secret not in stored


async def test_subscribe_hears_another_stores_changes(
    store: PostgresStore, other: PostgresStore
) -> None:
    """A key change through one store calls back a subscriber of the other, at once."""
    calls: list[float] = []
    other.subscribe(lambda: calls.append(time.monotonic()))
    # The first call comes on connecting: nothing can be known about what came before.
    assert await until(lambda: len(calls) == 1, within_s=5)

    keys = service(store)
    key, _ = await keys.create({"name": "k"}, "ops")
    assert await until(lambda: len(calls) == 2, within_s=1)
    await keys.update(key.id, {"name": "k2"}, "ops")
    assert await until(lambda: len(calls) == 3, within_s=1)
    await keys.delete(key.id, "ops")
    assert await until(lambda: len(calls) == 4, within_s=1)


async def test_subscribe_reconnects_after_the_connection_is_killed(
    store: PostgresStore,
    other: PostgresStore,
    pg_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A killed LISTEN connection comes back, calls back once for what it missed, and hears on."""
    caplog.set_level(logging.INFO, logger="gateway.store")
    calls: list[float] = []
    other.subscribe(lambda: calls.append(time.monotonic()))
    assert await until(lambda: len(calls) == 1, within_s=5)
    name = listen_application_name()
    (first,) = await pg.listen_backends(pg_database, name)

    await pg.terminate(pg_database, first)
    assert await until(lambda: len(calls) == 2, within_s=10)
    backends = await pg.listen_backends(pg_database, name)
    await service(store).create({"name": "after"}, "ops")

    assert await until(lambda: len(calls) == 3, within_s=1)
    assert len(backends) == 1 and backends != [first]
    assert name == f"share-gateway-listen:{os.getpid()}"
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.store"]
    assert any("lost" in m for m in messages)
    assert any("restored" in m for m in messages)


async def test_open_upgrades_a_store_made_before_rate_limits(pg_url: str, pg_database: str) -> None:
    """A version 2 schema gains the rate limit columns; its keys keep working, with no limit."""
    vault = KeyVault(SECRET_KEY)
    old = PostgresStore(pg_url)
    await old.open()
    key, value = await KeyService(old, vault).create({"name": "old", "admin": True}, "ops")
    await old.close()
    schema = schema_of(pg_url)
    # Back to the schema as version 2 left it.
    await pg.execute(
        f"{pg.SERVER}/{pg_database}",
        f'ALTER TABLE "{schema}".keys DROP COLUMN rate_limit_requests,'
        " DROP COLUMN rate_limit_per_seconds",
        f'DELETE FROM "{schema}".schema_version WHERE version > 2',  # noqa: S608
    )

    store = PostgresStore(pg_url)
    await store.open()
    try:
        found = await store.find_key(vault.lookup_hash(value))
        limit = {"requests": 100, "perSeconds": 60}
        await KeyService(store, vault).update(key.id, {"rateLimit": limit}, "ops")
        limited = await store.get_key(key.id)
    finally:
        await store.close()
    rows = await pg.fetch(
        f"{pg.SERVER}/{pg_database}",
        f'SELECT version FROM "{schema}".schema_version ORDER BY version',  # noqa: S608
    )

    assert found is not None and (found.id, found.admin, found.rate_limit) == (key.id, True, None)
    assert limited is not None and limited.rate_limit == RateLimit(100, 60)
    assert [row[0] for row in rows] == list(range(1, len(MIGRATIONS) + 1))


async def test_rate_limit_columns_are_set_together(pg_url: str, pg_database: str) -> None:
    """The schema refuses half a rate limit, whatever writes to it."""
    store = PostgresStore(pg_url)
    await store.open()
    key, _ = await KeyService(store, KeyVault(SECRET_KEY)).create({"name": "k"}, "ops")
    await store.close()

    with pytest.raises(asyncpg.CheckViolationError):
        await pg.execute(
            f"{pg.SERVER}/{pg_database}",
            f'UPDATE "{schema_of(pg_url)}".keys SET rate_limit_requests = 5'  # noqa: S608
            f" WHERE id = '{key.id}'",
        )
