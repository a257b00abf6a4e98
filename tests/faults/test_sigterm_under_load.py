"""SIGTERM while many requests are in flight, some waiting on slow upstream answers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import aiohttp

from tests.processes import GatewayProcess
from tests.proxy.wire import SHARES, Clients
from tests.upstreams import ScriptedUpstream, http_response, read_request

StartProcess = Callable[..., GatewayProcess]
IN_FLIGHT = 80


async def answer_in_a_while(
    server: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer after 0 to 1.5 s, by connection number: fast and slow answers mixed."""
    await read_request(reader)
    await asyncio.sleep((server.connections % 7) * 0.25)
    writer.write(http_response(b'{"id": 1}'))
    await writer.drain()


async def test_sigterm_under_load_finishes_every_request_and_counts_it(
    gateway_process: StartProcess,
) -> None:
    """Requests in flight at SIGTERM all get their answer, and every one is counted after."""
    with ScriptedUpstream(answer_in_a_while) as upstream:
        config = {
            "upstream": upstream.config(timeout_s=10),
            # Counts reach the store only at shutdown: what SIGTERM writes is all there is.
            "usage": {"flush_interval_s": 60},
        }
        process = gateway_process(config)
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with (
            aiohttp.ClientSession(base_url=process.public_url, connector=connector) as public,
            aiohttp.ClientSession(
                base_url=process.admin_url, headers=process.admin_headers
            ) as admin,
        ):
            key = await Clients(public, admin).create_key(permissions={"get": True, "create": True})

            async def one(n: int) -> int | str:
                method, body = ("GET", None) if n % 2 else ("POST", {"contentId": n + 1})
                path = f"{SHARES}/s{n}" if method == "GET" else SHARES
                try:
                    async with public.request(
                        method, path, json=body, headers=key.auth
                    ) as response:
                        await response.read()
                        return response.status
                except aiohttp.ClientConnectionError:
                    return "not accepted"  # Sent after the listener closed: never in flight.

            requests = [asyncio.create_task(one(n)) for n in range(IN_FLIGHT)]
            # The upstream counts in a thread of its own: polled, as no event crosses over.
            while upstream.connections < IN_FLIGHT * 3 // 4:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            assert process.process is not None
            process.process.send_signal(signal.SIGTERM)
            outcomes = await asyncio.gather(*requests)
        exit_code = await asyncio.to_thread(process.stop)
        reached_upstream = upstream.connections

    answered = [outcome for outcome in outcomes if outcome != "not accepted"]
    assert exit_code == 0
    assert answered == [200] * len(answered)
    assert len(answered) == reached_upstream >= IN_FLIGHT * 3 // 4

    reader = gateway_process(config)  # The same folder, so the same store.
    async with (
        aiohttp.ClientSession(base_url=reader.admin_url, headers=reader.admin_headers) as admin,
        admin.get(f"/admin/api/keys/{key.id}") as response,
    ):
        shown = await response.json()
    assert (shown["usageCount"], shown["deniedCount"]) == (len(answered), 0)
