"""The PostgreSQL the tests run against: a database per test run, a schema per test."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg

SERVER = "postgresql://postgres@127.0.0.1:5432"
# The database the test server has from the start; test databases are made from it.
MAINTENANCE_URL = f"{SERVER}/test"

T = TypeVar("T")


def run(job: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own, leaving any test's event loop alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(job)
    finally:
        loop.close()


async def execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


def create_database() -> str:
    """A new, empty database; answers its name."""
    name = f"share_gateway_test_{secrets.token_hex(6)}"
    run(execute(MAINTENANCE_URL, f'CREATE DATABASE "{name}"'))
    return name


def drop_database(name: str) -> None:
    # FORCE: a gateway process a failed test left behind must not keep the database alive.
    run(execute(MAINTENANCE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_schema(database: str) -> str:
    """A store URL whose tables live in a new, empty schema of `database`."""
    schema = f"t_{secrets.token_hex(6)}"
    run(execute(f"{SERVER}/{database}", f'CREATE SCHEMA "{schema}"'))
    # asyncpg passes unknown URL parameters on as server settings.
    return f"{SERVER}/{database}?search_path={schema}"


async def listen_backends(database: str, application_name: str) -> list[int]:
    """Backend pids of the connections with this application_name."""
    rows = await fetch(
        f"{SERVER}/{database}",
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        database,
        application_name,
    )
    return [row[0] for row in rows]


async def terminate(database: str, pid: int) -> None:
    await fetch(f"{SERVER}/{database}", "SELECT pg_terminate_backend($1)", pid)
