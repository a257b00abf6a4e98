"""Every key once through the gateway, so that its key cache holds all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import aiohttp


async def _touch(url: str, values: Sequence[str], concurrency: int) -> tuple[int, int]:
    ok = failed = 0
    # One iterator shared by the workers: each value is taken exactly once.
    pending: Iterator[str] = iter(values)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, failed
        for value in pending:
            headers = {"Authorization": f"Bearer {value}"}
            async with session.get(url, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    ok += 1
                else:
                    failed += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok, failed


def touch_every_key(url: str, values: Sequence[str], concurrency: int = 32) -> tuple[int, int]:
    """GET `url` once with each key value: how many answered 2xx, and how many did not.

    wrk cannot stop after a given number of requests, and a key the warm-up
    missed would be a store lookup inside a measured run.
    """
    return asyncio.run(_touch(url, values, concurrency))
