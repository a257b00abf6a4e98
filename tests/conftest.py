"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.config import Listen, Settings, load_settings, parse_settings
from tests.processes import ADMIN_TOKEN, SECRET_KEY, GatewayProcess
from tests.proxy.wire import Proxy, StartProxy
from tests.redisdb import RedisServer, delete_under, unique_prefix
from tests.upstreams import RecordingUpstream


def test_settings(folder: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for an in-process gateway on free ports, a SQLite file in `folder`."""
    data: dict[str, Any] = {
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "127.0.0.1:0", "tokens": [{"name": "ops", "token": ADMIN_TOKEN}]},
        "store": {"url": f"sqlite:///{folder}/gateway.db", "secret_key": SECRET_KEY},
        "usage": {"flush_interval_s": 0.2},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_settings(data, "test")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway in this process, serving on free ports, upstream the embedded backend."""
    running = Gateway(test_settings(tmp_path))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the admin listener carrying the admin token."""
    async with aiohttp.ClientSession(
        base_url=gateway.admin_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as session:
        yield session


@pytest.fixture
async def public(gateway: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the public listener, with no credentials of its own."""
    async with aiohttp.ClientSession(base_url=gateway.public_url) as session:
        yield session


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start `share-gateway serve` processes; each is stopped when the test ends."""
    started: list[GatewayProcess] = []

    def start(overrides: dict[str, Any] | None = None, name: str = "gw") -> GatewayProcess:
        process = GatewayProcess(tmp_path / name, overrides).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A new PostgreSQL database for this run, dropped at the end; unreachable means failed."""
    from tests import pg

    name = pg.create_database()
    yield name
    pg.drop_database(name)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A PostgreSQL store URL on an empty schema of its own."""
    from tests import pg

    return pg.create_schema(pg_database)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted when the test ends."""
    prefix = unique_prefix()
    yield prefix
    delete_under(prefix)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start private redis-server processes on free ports; all stop when the test ends."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    """A recording upstream that answers 200 {"ok": true} until told otherwise."""
    with RecordingUpstream() as server:
        yield server


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[StartProxy]:
    """Start in-process gateways with the given config sections; all stop at the end."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(**sections: dict[str, Any]) -> Proxy:
            nonlocal count
            count += 1
            folder = tmp_path / f"gateway-{count}"
            folder.mkdir()
            gateway = Gateway(test_settings(folder, **sections))
            await gateway.start()
            stack.push_async_callback(gateway.stop)
            public = await stack.enter_async_context(
                aiohttp.ClientSession(base_url=gateway.public_url)
            )
            admin = await stack.enter_async_context(
                aiohttp.ClientSession(
                    base_url=gateway.admin_url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
            )
            return Proxy(public, admin, gateway)

        yield start


__all__ = ["Listen", "load_settings", "replace", "test_settings"]
