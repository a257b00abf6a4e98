"""Several real gateway processes on one PostgreSQL store, and moving a store between kinds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.store.postgres import PostgresStore
from tests import pg
from tests.processes import ADMIN_TOKEN, SECRET_KEY, GatewayProcess
from tests.redisdb import REDIS_URL, keys_under

Start = Callable[..., GatewayProcess]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIST = "/webapi/share?spaceKeys=DEV"
SHARE = "/webapi/share/9b1e4c52-57a4-4a8e-9c1f-0d3b2a6f7e10"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def on_postgres(url: str) -> dict[str, Any]:
    return {"store": {"url": url, "secret_key": SECRET_KEY}}


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def create_key(gateway: GatewayProcess, **fields: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers=ADMIN) as session,
        session.post(f"{gateway.admin_url}/admin/api/keys", json=fields) as response,
    ):
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def admin_call(
    gateway: GatewayProcess, method: str, path: str, body: Any = None, status: int = 200
) -> Any:
    async with (
        aiohttp.ClientSession(headers=ADMIN) as session,
        session.request(method, f"{gateway.admin_url}/admin/api{path}", json=body) as response,
    ):
        assert response.status == status, await response.text()
        return None if status == 204 else await response.json()


async def status_of(gateway: GatewayProcess, value: str, method: str = "GET") -> int:
    """LIST with GET, or DELETE of a share (which the test keys may not do)."""
    path = LIST if method == "GET" else SHARE
    async with (
        aiohttp.ClientSession(headers=bearer(value)) as session,
        session.request(method, f"{gateway.public_url}{path}") as response,
    ):
        await response.read()
        return response.status


async def within_1s(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `check` holds within one second from now (polled)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


def answers(gateway: GatewayProcess, value: str, expected: int) -> Callable[[], Awaitable[bool]]:
    """A check that the gateway answers LIST with this key by `expected`."""

    async def check() -> bool:
        return await status_of(gateway, value) == expected

    return check


async def listen_backend(database: str, name: str, other_than: int | None = None) -> int:
    """The backend pid of the LISTEN connection named `name`, once there is a new one."""
    deadline = time.monotonic() + 10
    while True:
        pids = [pid for pid in await pg.listen_backends(database, name) if pid != other_than]
        if pids:
            return pids[0]
        assert time.monotonic() < deadline, f"no LISTEN connection named {name}"
        await asyncio.sleep(0.05)


async def test_fleet_key_created_on_one_gateway_works_on_the_other(
    gateway_process: Start, pg_url: str
) -> None:
    """A key created through A's admin API is accepted and listed by B at once."""
    a = gateway_process(on_postgres(pg_url), name="a")
    b = gateway_process(on_postgres(pg_url), name="b")

    key = await create_key(a, name="shared", permissions={"get": True, "list": True})
    listed = await admin_call(b, "GET", "/keys")

    assert await status_of(b, key["value"]) == 200
    assert await status_of(a, key["value"]) == 200
    assert [k["id"] for k in listed["keys"]] == [key["id"]]


async def test_fleet_usage_from_both_gateways_sums_exactly(
    gateway_process: Start, pg_url: str
) -> None:
    """Concurrent requests split across two gateways add up exactly once both have stopped."""
    a = gateway_process(on_postgres(pg_url), name="a")
    b = gateway_process(on_postgres(pg_url), name="b")
    key = await create_key(a, name="busy", permissions={"list": True})

    async with aiohttp.ClientSession(headers=bearer(key["value"])) as session:

        async def call(gateway: GatewayProcess, method: str, path: str) -> int:
            async with session.request(method, f"{gateway.public_url}{path}") as response:
                await response.read()
                return response.status

        # 400 allowed LISTs and 40 refused DELETEs (no permission), spread over both.
        calls = [call(gw, "GET", LIST) for _ in range(200) for gw in (a, b)]
        calls += [call(gw, "DELETE", SHARE) for _ in range(20) for gw in (a, b)]
        statuses = await asyncio.gather(*calls)

    assert a.stop() == 0 and b.stop() == 0
    store = PostgresStore(pg_url)
    await store.open()
    try:
        stored = await store.get_key(key["id"])
        buckets = await store.usage_buckets(key["id"], LONG_AGO)
    finally:
        await store.close()

    assert (statuses.count(200), statuses.count(403)) == (400, 40)
    assert stored is not None
    assert (stored.usage_count, stored.denied_count) == (400, 40)
    assert (sum(b.allowed for b in buckets), sum(b.denied for b in buckets)) == (400, 40)


async def test_fleet_change_and_deletion_on_one_are_enforced_by_the_other_within_1s(
    gateway_process: Start, pg_url: str
) -> None:
    """B refuses a permission taken away on A, then the key deleted on A, within a second."""
    a = gateway_process(on_postgres(pg_url), name="a")
    b = gateway_process(on_postgres(pg_url), name="b")
    key = await create_key(a, name="k", permissions={"get": True, "list": True})
    value = key["value"]
    # B has the key in its cache now.
    assert await status_of(b, value) == 200

    await admin_call(a, "PATCH", f"/keys/{key['id']}", {"permissions": {"list": False}})
    assert await within_1s(answers(b, value, 403))

    await admin_call(a, "DELETE", f"/keys/{key['id']}", status=204)
    assert await within_1s(answers(b, value, 401))


async def test_fleet_changes_still_arrive_after_the_listen_connection_is_killed(
    gateway_process: Start, pg_url: str, pg_database: str
) -> None:
    """B's LISTEN connection, killed on the server, comes back; A's changes reach B in 1 s."""
    a = gateway_process(on_postgres(pg_url), name="a")
    b = gateway_process(on_postgres(pg_url), name="b")
    assert b.process is not None
    name = f"share-gateway-listen:{b.process.pid}"
    key = await create_key(a, name="k", permissions={"get": True, "list": True})
    value = key["value"]
    assert await status_of(b, value) == 200

    killed = await listen_backend(pg_database, name)
    await pg.terminate(pg_database, killed)
    await listen_backend(pg_database, name, other_than=killed)

    await admin_call(a, "PATCH", f"/keys/{key['id']}", {"permissions": {"list": False}})
    assert await within_1s(answers(b, value, 403))
    await admin_call(a, "DELETE", f"/keys/{key['id']}", status=204)
    assert await within_1s(answers(b, value, 401))
    logs = b.logs()
    assert "notifications from" in logs and "lost; reconnecting" in logs and "restored" in logs


def migrate(folder: Path, source: str, target: str) -> str:
    """share-gateway migrate, as an operator runs it; answers what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--from", source, "--to", target],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def views(gateway: GatewayProcess, key_ids: list[str]) -> dict[str, Any]:
    """What the admin API shows: the key list, every key's history, and non-zero usage."""
    shown: dict[str, Any] = {"keys": (await admin_call(gateway, "GET", "/keys"))["keys"]}
    live = {k["id"] for k in shown["keys"]}
    for key_id in key_ids:
        shown[f"history {key_id}"] = await admin_call(gateway, "GET", f"/keys/{key_id}/history")
        if key_id in live:
            buckets = (await admin_call(gateway, "GET", f"/keys/{key_id}/usage"))["buckets"]
            # Only the hours with traffic: the 7-day window may move on between two reads.
            shown[f"usage {key_id}"] = [b for b in buckets if b["allowed"] or b["denied"]]
    return shown


async def test_fleet_migrate_round_trips_sqlite_postgres_sqlite(
    gateway_process: Start, pg_url: str, tmp_path: Path
) -> None:
    """Keys, values, history and usage survive SQLite -> PostgreSQL -> a new SQLite file."""
    first = gateway_process(name="sqlite")
    used = await create_key(first, name="used", permissions={"list": True})
    await admin_call(first, "PATCH", f"/keys/{used['id']}", {"description": "ci"})
    gone = await create_key(first, name="gone", admin=True)
    await admin_call(first, "POST", f"/keys/{used['id']}/reveal")
    for _ in range(5):
        assert await status_of(first, used["value"]) == 200
    assert await status_of(first, used["value"], "DELETE") == 403
    await admin_call(first, "DELETE", f"/keys/{gone['id']}", status=204)
    ids = [used["id"], gone["id"]]
    before = await views(first, ids)
    assert first.stop() == 0

    sqlite_url = f"sqlite://{first.folder}/gateway.db"
    printed = migrate(tmp_path, sqlite_url, pg_url)
    on_pg = gateway_process(on_postgres(pg_url), name="postgres")
    after = await views(on_pg, ids)
    revealed = await admin_call(on_pg, "POST", f"/keys/{used['id']}/reveal")
    works = await status_of(on_pg, used["value"]), await status_of(on_pg, gone["value"])
    on_pg_now = await views(on_pg, ids)
    assert on_pg.stop() == 0

    back_url = f"sqlite://{tmp_path}/back/gateway.db"
    migrate(tmp_path, pg_url, back_url)
    back = gateway_process({"store": {"url": back_url}}, name="back")
    back_again = await views(back, ids)

    hours = len(before[f"usage {used['id']}"])
    assert printed == f"copied 2 keys (1 deleted), 5 history events, {hours} hourly usage buckets\n"
    assert before["keys"][0]["usageCount"] == 5 and before["keys"][0]["deniedCount"] == 1
    assert after == before
    assert revealed == {"value": used["value"]}
    assert works == (200, 401)
    assert back_again == on_pg_now


async def test_fleet_rate_limit_is_one_budget_for_both_gateways(
    gateway_process: Start, pg_url: str, redis_prefix: str
) -> None:
    """With a Redis store, 100 requests at once over two gateways admit exactly the limit."""
    limits = {"rate_limits": {"store": REDIS_URL, "redis_prefix": redis_prefix}}
    a = gateway_process({**on_postgres(pg_url), **limits}, name="a")
    b = gateway_process({**on_postgres(pg_url), **limits}, name="b")
    key = await create_key(
        a, name="limited", permissions={"list": True}, rateLimit={"requests": 25, "perSeconds": 60}
    )

    async with aiohttp.ClientSession(headers=bearer(key["value"])) as session:

        async def call(gateway: GatewayProcess) -> tuple[int, str | None]:
            async with session.get(f"{gateway.public_url}{LIST}") as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")

        answers = await asyncio.gather(*(call(gw) for _ in range(50) for gw in (a, b)))

    assert a.stop() == 0 and b.stop() == 0
    store = PostgresStore(pg_url)
    await store.open()
    try:
        stored = await store.get_key(key["id"])
    finally:
        await store.close()
    statuses = [status for status, _ in answers]
    assert (statuses.count(200), statuses.count(429)) == (25, 75)
    assert all(1 <= int(after or 0) <= 60 for status, after in answers if status == 429)
    assert stored is not None and (stored.usage_count, stored.denied_count) == (25, 75)
    # The Redis key names the key by its id; the value appears nowhere in Redis.
    assert keys_under(redis_prefix) == [f"{redis_prefix}:rate:{key['id']}"]
