"""server.workers: several processes on one port, with exact usage between them."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.processes import GatewayProcess
from tests.redisdb import REDIS_URL


def children(pid: int) -> list[int]:
    """The pids of a process's children, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def wait_for_children(pid: int, count: int, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children(pid)
        if len(pids) == count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, found {children(pid)}")


async def test_two_workers_serve_one_port_and_count_exactly(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """Requests spread over two workers add up to the exact usage count after SIGTERM."""
    process = gateway_process({"server": {"workers": 2}})
    assert process.process is not None
    wait_for_children(process.process.pid, 2)
    async with aiohttp.ClientSession(headers=process.admin_headers) as admin:
        created = await admin.post(
            process.admin_url + "/admin/api/keys",
            json={"name": "w", "permissions": {"create": True}},
        )
        key = await created.json()

    async def one(session: aiohttp.ClientSession) -> int:
        response = await session.post(
            process.public_url + "/webapi/share",
            json={"contentId": "1"},
            headers={"Authorization": f"Bearer {key['value']}"},
        )
        return response.status

    # A new connection per request lets the kernel pick a worker each time.
    connector = aiohttp.TCPConnector(force_close=True, limit=20)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + 10
        statuses: list[int] = []
        while len(statuses) < 200 and time.monotonic() < deadline:
            statuses += await asyncio.gather(*(one(session) for _ in range(20)))
    assert process.stop() == 0

    with sqlite3.connect(process.folder / "gateway.db") as db:
        count = db.execute("SELECT usage_count FROM key_usage WHERE key_id = ?", (key["id"],))
        stored = count.fetchone()[0]
    assert statuses.count(201) == len(statuses) == 200
    assert stored == 200


async def test_a_dead_worker_is_started_again(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """When a worker is killed the supervisor starts a new one and the port keeps serving."""
    process = gateway_process({"server": {"workers": 2}})
    assert process.process is not None
    first = wait_for_children(process.process.pid, 2)

    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = children(process.process.pid)
        if len(now) == 2 and first[0] not in now:
            break
        await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as session:
        response = await session.get(process.public_url + "/healthz")

    assert len(now) == 2 and first[0] not in now
    assert response.status == 200


async def test_two_workers_share_one_rate_limit_in_redis(
    gateway_process: Callable[..., GatewayProcess], redis_prefix: str
) -> None:
    """With a Redis store, a key's limit holds for both workers together, not for each."""
    limits = {"store": REDIS_URL, "redis_prefix": redis_prefix}
    process = gateway_process({"server": {"workers": 2}, "rate_limits": limits})
    assert process.process is not None
    wait_for_children(process.process.pid, 2)
    async with aiohttp.ClientSession(headers=process.admin_headers) as admin:
        created = await admin.post(
            process.admin_url + "/admin/api/keys",
            json={
                "name": "w",
                "permissions": {"list": True},
                "rateLimit": {"requests": 10, "perSeconds": 60},
            },
        )
        key = await created.json()

    async def one(session: aiohttp.ClientSession) -> int:
        async with session.get(
            process.public_url + "/webapi/share?spaceKeys=DEV",
            headers={"Authorization": f"Bearer {key['value']}"},
        ) as response:
            return response.status

    # A new connection per request lets the kernel pick a worker each time.
    connector = aiohttp.TCPConnector(force_close=True, limit=20)
    async with aiohttp.ClientSession(connector=connector) as session:
        statuses = await asyncio.gather(*(one(session) for _ in range(60)))

    assert (statuses.count(200), statuses.count(429)) == (10, 50)
