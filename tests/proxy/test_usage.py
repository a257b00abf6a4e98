"""Usage counts: exact under load, across shutdown, per hour; and changes from other processes."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway.keys.values import new_value
from tests.processes import GatewayProcess
from tests.proxy.wire import ALL, SHARES, Clients, NewKey, Proxy, StartProxy, bearer
from tests.upstreams import Answer, RecordingUpstream

StartProcess = Callable[..., GatewayProcess]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def counts(shown: dict[str, Any]) -> tuple[int, int]:
    return shown["usageCount"], shown["deniedCount"]


async def status_of(session: aiohttp.ClientSession, method: str, path: str, key: str) -> int:
    async with session.request(method, path, headers=bearer(key)) as response:
        await response.read()
        return response.status


@asynccontextmanager
async def clients_of(process: GatewayProcess, limit: int = 100) -> AsyncIterator[Clients]:
    """Sessions on a gateway process's two listeners."""
    async with (
        aiohttp.ClientSession(
            base_url=process.public_url, connector=aiohttp.TCPConnector(limit=limit)
        ) as public,
        aiohttp.ClientSession(base_url=process.admin_url, headers=process.admin_headers) as admin,
    ):
        yield Clients(public, admin)


def process_config(upstream: RecordingUpstream, **sections: dict[str, Any]) -> dict[str, Any]:
    return {"upstream": upstream.config(timeout_s=10), **sections}


# --- exact counts under load --------------------------------------------------------------


async def load(proxy: Proxy) -> tuple[NewKey, NewKey, datetime, datetime]:
    """500 requests over 50 connections: two keys, allowed and denied, and unknown keys."""
    getter = await proxy.create_key(permissions={"get": True})
    lister = await proxy.create_key(permissions={"list": True})
    unknown = new_value()
    plan = (
        [("GET", f"{SHARES}/a", getter.value)] * 200
        + [("DELETE", f"{SHARES}/a", getter.value)] * 100
        + [("GET", f"{SHARES}?contents=1", lister.value)] * 120
        + [("GET", SHARES, lister.value)] * 50
        + [("GET", f"{SHARES}/a", unknown)] * 30
    )
    random.Random(7).shuffle(plan)
    started = datetime.now(UTC)

    async with aiohttp.ClientSession(
        base_url=proxy.gateway.public_url, connector=aiohttp.TCPConnector(limit=50)
    ) as public:
        statuses = await asyncio.gather(*(status_of(public, *call) for call in plan))

    assert sorted(statuses) == [200] * 320 + [401] * 30 + [403] * 150
    return getter, lister, started, datetime.now(UTC)


async def assert_stored(proxy: Proxy, key: NewKey, expected: tuple[int, int]) -> None:
    stored = await proxy.state.store.get_key(key.id)
    assert stored is not None
    assert (stored.usage_count, stored.denied_count) == expected


async def test_usage_exact_under_concurrency(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Counts of concurrent requests are exact in the admin API before and after writing."""
    proxy = await start_proxy(upstream=upstream.config(), usage={"flush_interval_s": 60})

    getter, lister, started, ended = await load(proxy)

    assert len(upstream.requests) == 320
    shown = {key.id: await proxy.key(key.id) for key in (getter, lister)}
    assert counts(shown[getter.id]) == (200, 100)
    assert counts(shown[lister.id]) == (120, 50)
    for body in shown.values():
        assert started <= parse(body["lastUsedAt"]) <= ended

    await proxy.state.usage.flush()
    await assert_stored(proxy, getter, (200, 100))
    await assert_stored(proxy, lister, (120, 50))
    for key in getter, lister:
        assert await proxy.key(key.id) == shown[key.id]


async def test_usage_exact_with_flushes_during_load(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Batches written while requests are counted lose nothing and add nothing twice."""
    proxy = await start_proxy(upstream=upstream.config(), usage={"flush_interval_s": 0.01})

    getter, lister, _, _ = await load(proxy)
    await proxy.state.usage.flush()

    await assert_stored(proxy, getter, (200, 100))
    await assert_stored(proxy, lister, (120, 50))
    assert counts(await proxy.key(getter.id)) == (200, 100)
    assert counts(await proxy.key(lister.id)) == (120, 50)


DENIALS: dict[str, tuple[dict[str, Any], str, str, dict[str, str], bytes | None]] = {
    # key fields, method, path, extra headers, body
    "expired": ({"notValidAfter": "2000-01-01T00:00:00Z"}, "GET", f"{SHARES}/a", {}, None),
    "not yet valid": ({"notValidBefore": "2999-01-01T00:00:00Z"}, "GET", f"{SHARES}/a", {}, None),
    "ip": ({"allowedIps": ["192.0.2.1"]}, "GET", f"{SHARES}/a", {}, None),
    "permission": ({"permissions": {"list": True}}, "GET", f"{SHARES}/a", {}, None),
    "list scope": ({}, "GET", SHARES, {}, None),
    "bad parameter": ({}, "GET", f"{SHARES}?contents=1&limit=0", {}, None),
    "bad uuid": ({}, "GET", f"{SHARES}/a.b", {}, None),
    "bad body": ({}, "POST", SHARES, {"Content-Type": "application/json"}, b"{}"),
    "too large": ({}, "POST", SHARES, {"Content-Type": "application/json"}, b" " * 2000),
    "media type": ({}, "POST", SHARES, {"Content-Type": "text/plain"}, b"{}"),
}


@pytest.mark.parametrize(
    ("fields", "method", "path", "headers", "body"), DENIALS.values(), ids=DENIALS.keys()
)
async def test_usage_refusals_counted_as_denied(
    start_proxy: StartProxy,
    upstream: RecordingUpstream,
    fields: dict[str, Any],
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    """Every refusal of a known key counts as denied, never as used."""
    proxy = await start_proxy(upstream=upstream.config(), server={"max_body_bytes": 1000})
    key = await proxy.create_key(**{"permissions": ALL, **fields})

    async with proxy.public.request(
        method, path, data=body, headers={**key.auth, **headers}
    ) as response:
        assert 400 <= response.status < 500

    shown = await proxy.key(key.id)
    assert (counts(shown), shown["lastUsedAt"]) == ((0, 1), None)
    assert upstream.requests == []


@pytest.mark.parametrize("status", [200, 201, 204, 404, 409, 500, 503])
async def test_usage_counted_whatever_the_upstream_answered(
    proxy: Proxy, upstream: RecordingUpstream, status: int
) -> None:
    """A request sent upstream counts as used, whatever status comes back."""
    upstream.answer = Answer(status, b"" if status == 204 else b"{}")
    key = await proxy.create_key(permissions=ALL)

    assert await status_of(proxy.public, "GET", f"{SHARES}/a", key.value) == status

    assert counts(await proxy.key(key.id)) == (1, 0)


async def test_usage_unknown_keys_count_nowhere(proxy: Proxy) -> None:
    """Refusals without a known key change no key's counts."""
    key = await proxy.create_key(permissions=ALL)
    for value in (new_value(), "not-a-key", key.value[:-1] + "0"):
        assert await status_of(proxy.public, "GET", f"{SHARES}/a", value) == 401

    assert counts(await proxy.key(key.id)) == (0, 0)


# --- hourly buckets -----------------------------------------------------------------------


async def test_usage_hourly_buckets(
    start_proxy: StartProxy, upstream: RecordingUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Allowed and denied requests land in the hour they were made, flushed or not."""
    proxy = await start_proxy(upstream=upstream.config(), usage={"flush_interval_s": 60})
    key = await proxy.create_key(permissions={"get": True})
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    earlier, later = hour - timedelta(hours=3), hour - timedelta(hours=1)
    clock = earlier

    def now() -> datetime:
        return clock

    monkeypatch.setattr("gateway.proxy.routes.utcnow", now)

    async def requests(moment: datetime, allowed: int, denied: int) -> None:
        nonlocal clock
        clock = moment
        for _ in range(allowed):
            assert await status_of(proxy.public, "GET", f"{SHARES}/a", key.value) == 200
        for _ in range(denied):
            assert await status_of(proxy.public, "DELETE", f"{SHARES}/a", key.value) == 403

    async def busy_hours() -> list[dict[str, Any]]:
        async with proxy.admin.get(f"/admin/api/keys/{key.id}/usage") as response:
            assert response.status == 200
            buckets: list[dict[str, Any]] = (await response.json())["buckets"]
        assert len(buckets) == 7 * 24
        return [bucket for bucket in buckets if bucket["allowed"] or bucket["denied"]]

    await requests(earlier + timedelta(minutes=10), allowed=3, denied=1)
    await requests(later + timedelta(minutes=59), allowed=2, denied=0)
    await requests(later + timedelta(minutes=5), allowed=0, denied=2)
    expected = [
        {"start": iso(earlier), "allowed": 3, "denied": 1},
        {"start": iso(later), "allowed": 2, "denied": 2},
    ]
    assert await busy_hours() == expected
    assert (await proxy.key(key.id))["lastUsedAt"] == iso(later + timedelta(minutes=59))

    await proxy.state.usage.flush()
    assert await busy_hours() == expected

    await requests(later + timedelta(minutes=30), allowed=1, denied=1)
    expected[1] = {"start": iso(later), "allowed": 3, "denied": 3}
    assert await busy_hours() == expected
    assert counts(await proxy.key(key.id)) == (6, 4)


# --- shutdown -----------------------------------------------------------------------------


async def test_usage_exact_after_sigterm(
    gateway_process: StartProcess, upstream: RecordingUpstream
) -> None:
    """Counts not yet flushed are written on SIGTERM, from two processes on one store."""
    config = process_config(upstream, usage={"flush_interval_s": 30})
    first = gateway_process(config)
    async with clients_of(first) as clients:
        key = await clients.create_key(permissions={"get": True})
    second = gateway_process(config)

    for process, allowed, denied in ((first, 70, 30), (second, 50, 20)):
        async with clients_of(process, limit=20) as clients:
            calls = [("GET", f"{SHARES}/a")] * allowed + [("DELETE", f"{SHARES}/a")] * denied
            statuses = await asyncio.gather(
                *(status_of(clients.public, *call, key.value) for call in calls)
            )
            assert sorted(statuses) == [200] * allowed + [403] * denied

    assert [await asyncio.to_thread(p.stop, signal.SIGTERM) for p in (first, second)] == [0, 0]

    reader = gateway_process(config)
    async with clients_of(reader) as clients:
        shown = await clients.key(key.id)
    assert counts(shown) == (120, 50)
    assert shown["lastUsedAt"] is not None


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_usage_in_flight_request_completes_on_sigterm(
    gateway_process: StartProcess, upstream: RecordingUpstream
) -> None:
    """On SIGTERM the gateway stops listening, yet a request in flight gets its answer."""
    config = process_config(upstream, usage={"flush_interval_s": 30})
    process = gateway_process(config)
    upstream.answer = Answer.json(200, {"id": 1, "name": "slow"})
    async with clients_of(process) as clients:
        key = await clients.create_key(permissions={"get": True})
        upstream.hold()

        async def slow_get() -> tuple[int, bytes]:
            async with clients.public.get(f"{SHARES}/a", headers=key.auth) as response:
                return response.status, await response.read()

        in_flight = asyncio.create_task(slow_get())
        await upstream.requests_arrived(1)
        assert process.process is not None
        process.process.send_signal(signal.SIGTERM)

        deadline = time.monotonic() + 10
        while not await refuses_connections(process.public_port):
            assert time.monotonic() < deadline, "the gateway kept listening after SIGTERM"
            await asyncio.sleep(0.02)
        assert not in_flight.done()
        upstream.release()

        assert await in_flight == (200, b'{"id": 1, "name": "slow"}')
    assert await asyncio.to_thread(process.stop) == 0

    reader = gateway_process(config)
    async with clients_of(reader) as clients:
        assert counts(await clients.key(key.id)) == (1, 0)


# --- changes made by another process ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "command", "before", "after"),
    [
        ({"permissions": {"delete": True}}, ["update", "{id}", "--allow", "get"], 403, 200),
        ({"permissions": {"get": True}}, ["update", "{id}", "--allow", "delete"], 200, 403),
        ({"permissions": {"get": True}}, ["update", "{id}", "--ip", "192.0.2.1"], 200, 403),
        (
            {"permissions": {"get": True}},
            ["update", "{id}", "--not-after", "2000-01-01T00:00:00Z"],
            200,
            401,
        ),
        ({"permissions": {"get": True}}, ["delete", "{id}"], 200, 401),
    ],
)
async def test_usage_cli_change_enforced_within_a_second(
    gateway_process: StartProcess,
    upstream: RecordingUpstream,
    fields: dict[str, Any],
    command: list[str],
    before: int,
    after: int,
) -> None:
    """A key changed by the CLI in another process is enforced by the gateway within 1 s."""
    process = gateway_process(process_config(upstream))
    async with clients_of(process) as clients:
        key: NewKey = await clients.create_key(**fields)
        assert await status_of(clients.public, "GET", f"{SHARES}/a", key.value) == before

        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "keys",
            "--config",
            str(process.config_path),
            *(part.format(id=key.id) for part in command),
            cwd=process.folder,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await cli.communicate()
        assert cli.returncode == 0, errors.decode()
        changed = time.monotonic()

        while (status := await status_of(clients.public, "GET", f"{SHARES}/a", key.value)) != after:
            assert status == before
            assert time.monotonic() - changed < 1.0, "the change was not enforced within 1 s"
            await asyncio.sleep(0.02)
