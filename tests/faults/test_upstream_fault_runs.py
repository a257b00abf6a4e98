"""Runs of upstream faults against a gateway process: it keeps serving and leaks no connection.

The single faults and their answers are in tests/proxy/test_upstream_faults.py; here a real
gateway process meets hundreds of them in a row, and the connections are counted on both
sides: the gateway's open file descriptors (/proc/PID/fd) and the upstream's open sockets.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from itertools import cycle

import aiohttp
import pytest

from tests.processes import GatewayProcess
from tests.proxy.wire import ALL, SHARES, Clients, NewKey
from tests.upstreams import (
    Behaviour,
    ScriptedUpstream,
    answer,
    answer_bytes,
    answer_garbage,
    close_without_answer,
    http_response,
    read_request,
    reset_mid_headers,
    reset_mid_response,
    reset_without_answer,
    trickle,
    truncate_body,
)

StartProcess = Callable[..., GatewayProcess]
TIMEOUT_S = 0.3
# Descriptors a process may open or close on its own meanwhile (a log file, a store
# journal, the event loop's self-pipe): more than this after the run is a leak.
FD_TOLERANCE = 5


async def silent_until_closed(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read the request, answer nothing, and hold the connection until the gateway drops it."""
    await read_request(reader)
    await reader.read()


async def slow_answer(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A whole answer, but only after the gateway has given up waiting for it."""
    await read_request(reader)
    await asyncio.sleep(TIMEOUT_S * 2)
    writer.write(http_response())
    await writer.drain()


FAULTS: dict[str, Behaviour] = {
    "5xx": answer(b"<h1>upstream broke</h1>", "500 Internal Server Error"),
    "not json": answer_bytes(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
        b"Connection: close\r\n\r\nplain words"
    ),
    "truncated body": truncate_body,
    "body too slow": trickle(b'{"shares": []}', TIMEOUT_S),
    "reset mid body": reset_mid_response,
    "reset mid headers": reset_mid_headers,
    "reset before answer": reset_without_answer,
    "closed without answer": close_without_answer,
    "never answers": silent_until_closed,
    "answers too late": slow_answer,
    "not http": answer_garbage,
    "no status line end": answer_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
}
"""Every way the upstream misbehaves in a run, each in turn."""


def rotating(*behaviours: Behaviour) -> Behaviour:
    """Connection n gets behaviour n modulo their number: a run of every fault, repeated."""

    async def behave(
        server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await behaviours[(server.connections - 1) % len(behaviours)](server, reader, writer)

    return behave


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_upstream_connections(upstream: ScriptedUpstream) -> int:
    """Sockets the upstream still holds: its connections whose handler has not ended."""
    return len(upstream._writers)


async def settle(check: Callable[[], bool], wait_s: float = 10.0) -> bool:
    """Wait until a condition holds, as connections close in their own time."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def calls(public: aiohttp.ClientSession, key: NewKey, count: int) -> list[int]:
    """`count` share requests, ten at a time, of every operation in turn; their statuses."""
    plan = cycle(
        [
            ("GET", f"{SHARES}/a", None),
            ("GET", f"{SHARES}?contents=1", None),
            ("POST", SHARES, {"contentId": 1}),
            ("PUT", f"{SHARES}/a", {"name": "n"}),
            ("DELETE", f"{SHARES}/a", None),
        ]
    )
    requests = [next(plan) for _ in range(count)]
    gate = asyncio.Semaphore(10)

    async def one(method: str, path: str, body: object) -> int:
        async with gate, public.request(method, path, json=body, headers=key.auth) as response:
            await response.read()
            return response.status

    return await asyncio.gather(*(one(*request) for request in requests))


@pytest.mark.timeout(180)
async def test_upstream_fault_runs_leak_no_connection(gateway_process: StartProcess) -> None:
    """After 360 faulted requests the gateway serves, and holds as many sockets as before."""
    with ScriptedUpstream(rotating(*FAULTS.values())) as upstream:
        process = gateway_process(
            {
                "upstream": upstream.config(
                    timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S, retries=0
                )
            }
        )
        assert process.process is not None
        pid = process.process.pid
        async with (
            aiohttp.ClientSession(base_url=process.public_url) as public,
            aiohttp.ClientSession(
                base_url=process.admin_url, headers=process.admin_headers
            ) as admin,
        ):
            key = await Clients(public, admin).create_key(permissions=ALL, admin=True)
            # Warm-up: the first round opens what the gateway keeps open for good.
            await calls(public, key, len(FAULTS))
            assert await settle(lambda: open_upstream_connections(upstream) == 0)
            before = open_fds(pid)

            statuses = await calls(public, key, len(FAULTS) * 30)
            drained = await settle(lambda: open_upstream_connections(upstream) == 0)
            after = open_fds(pid)

            async with public.get("/healthz") as health:
                assert health.status == 200
            shown = await Clients(public, admin).key(key.id)

    assert set(statuses) <= {200, 500, 502, 504}, sorted(set(statuses))
    assert {500, 502, 504} <= set(statuses)
    assert drained, f"{open_upstream_connections(upstream)} upstream connections still open"
    assert after <= before + FD_TOLERANCE, (before, after)
    assert shown["usageCount"] == len(FAULTS) * 31
