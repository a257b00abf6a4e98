"""Store faults: a lock held by another process, a data folder that cannot be used, SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.app import Gateway
from gateway.store.sqlite import SqliteStore
from tests.processes import GatewayProcess


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold SQLite's write lock on the file from another connection, as another process would."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


async def short_busy_timeout(gateway: Gateway) -> None:
    """Wait 0.2 s for a lock instead of 5 s, so the test does not take long."""
    assert gateway.state is not None
    store = gateway.state.store
    assert isinstance(store, SqliteStore)
    await store.db.execute("PRAGMA busy_timeout = 200")


async def test_locked_store_answers_503_and_keeps_serving_shares(
    gateway: Gateway, admin: aiohttp.ClientSession, public: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """While another process holds the lock, writes answer 503 in the error body; reads go on."""
    created = await (
        await admin.post("/admin/api/keys", json={"name": "k", "permissions": {"create": True}})
    ).json()
    await short_busy_timeout(gateway)
    auth = {"Authorization": f"Bearer {created['value']}"}

    with locked(tmp_path / "gateway.db"):
        write = await admin.post("/admin/api/keys", json={"name": "blocked"})
        body = await write.json()
        share = await public.post("/webapi/share", json={"contentId": "1"}, headers=auth)
    after = await admin.post("/admin/api/keys", json={"name": "after"})

    assert (write.status, body["error"], write.headers["Retry-After"]) == (
        503,
        "STORE_UNAVAILABLE",
        "1",
    )
    assert body["requestId"] == write.headers["X-Request-Id"]
    assert share.status == 201
    assert after.status == 201


async def test_usage_flushed_during_a_lock_is_written_once_after(
    gateway: Gateway, admin: aiohttp.ClientSession, public: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Usage counted while flushes fail on a lock is all written, once, when it is released."""
    created = await (
        await admin.post("/admin/api/keys", json={"name": "k", "permissions": {"create": True}})
    ).json()
    await short_busy_timeout(gateway)
    auth = {"Authorization": f"Bearer {created['value']}"}
    assert gateway.state is not None
    failures_before = gateway.state.usage.failures

    with locked(tmp_path / "gateway.db"):
        statuses = [
            (await public.post("/webapi/share", json={"contentId": "1"}, headers=auth)).status
            for _ in range(20)
        ]
        for _ in range(50):
            if gateway.state.usage.failures > failures_before:
                break
            await asyncio.sleep(0.1)
    await gateway.state.usage.flush()
    stored = await gateway.state.store.get_key(created["id"])

    assert statuses == [201] * 20
    assert gateway.state.usage.failures > failures_before
    assert stored is not None and stored.usage_count == 20


@pytest.mark.parametrize(
    "store_path",
    [
        "{tmp}/a-file/data/gateway.db",
        "/proc/share-gateway-test/gateway.db",
    ],
)
def test_unusable_data_folder_stops_start_up_naming_it(tmp_path: Path, store_path: str) -> None:
    """A data folder that cannot be created stops serve with its path and no traceback."""
    (tmp_path / "a-file").write_text("not a folder")
    path = store_path.format(tmp=tmp_path)
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": f"sqlite://{path}"}}))

    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 3
    assert str(Path(path).parent) in result.stderr
    assert "Traceback" not in result.stderr


async def test_sigkill_loses_no_acknowledged_key_change(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """Every key change the admin API acknowledged is there after SIGKILL."""
    process = gateway_process()
    async with aiohttp.ClientSession(headers=process.admin_headers) as admin:
        url = process.admin_url + "/admin/api/keys"
        keys: list[dict[str, Any]] = []
        for n in range(10):
            keys.append(await (await admin.post(url, json={"name": f"k{n}"})).json())
        patched = await admin.patch(f"{url}/{keys[0]['id']}", json={"description": "last"})
        assert patched.status == 200
    process.stop(signal.SIGKILL)

    process.start()
    async with aiohttp.ClientSession(headers=process.admin_headers) as admin:
        listed = await (await admin.get(process.admin_url + "/admin/api/keys")).json()

    assert [k["name"] for k in listed["keys"]] == [f"k{n}" for n in range(10)]
    assert listed["keys"][0]["description"] == "last"


async def test_usage_stop_during_a_flush_waits_for_it(
    gateway: Gateway, admin: aiohttp.ClientSession, public: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Shutting down while a flush waits on a lock lets it finish: no count is lost or doubled."""
    created = await (
        await admin.post("/admin/api/keys", json={"name": "k", "permissions": {"create": True}})
    ).json()
    auth = {"Authorization": f"Bearer {created['value']}"}
    assert gateway.state is not None
    usage = gateway.state.usage
    await usage.flush()

    with locked(tmp_path / "gateway.db"):
        for _ in range(7):
            response = await public.post("/webapi/share", json={"contentId": "1"}, headers=auth)
            assert response.status == 201
        # The timer's own flush starts and waits for the lock (the store waits up to 5 s).
        usage.interval_s = 0.05
        for _ in range(50):
            if usage.flushing:
                break
            await asyncio.sleep(0.01)
        assert usage.flushing
        stopping = asyncio.create_task(usage.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()
    await asyncio.wait_for(stopping, 10)
    stored = await gateway.state.store.get_key(created["id"])

    assert stored is not None and stored.usage_count == 7
