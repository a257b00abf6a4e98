"""Per-key rate limits on the request path: exact under concurrency, last of the checks."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from gateway.limits.shared import RedisLimiter
from tests.processes import free_port
from tests.proxy.wire import ALL, SHARES, NewKey, Proxy, StartProxy, error_of
from tests.redisdb import REDIS_URL, keys_under
from tests.upstreams import RecordingUpstream

SHARE = f"{SHARES}/9b1e4c52"


async def send(
    proxy: Proxy,
    key: NewKey,
    method: str = "GET",
    path: str = SHARE,
    **options: Any,
) -> aiohttp.ClientResponse:
    headers = {**key.auth, **options.pop("headers", {})}
    async with proxy.public.request(method, path, headers=headers, **options) as response:
        await response.read()
        return response


async def limited_key(proxy: Proxy, requests: int, per_seconds: int, **fields: Any) -> NewKey:
    limit = {"requests": requests, "perSeconds": per_seconds}
    return await proxy.create_key(permissions=fields.pop("permissions", ALL), rateLimit=limit)


def retry_after(response: aiohttp.ClientResponse) -> int:
    return int(response.headers["Retry-After"])


async def test_rate_limit_admits_exactly_n_of_m_concurrent_requests(
    proxy: Proxy, upstream: RecordingUpstream
) -> None:
    """20 requests at once on a 5-per-2-s key: 5 reach the upstream, 15 get 429 RATE_LIMITED."""
    key = await limited_key(proxy, 5, 2)
    # The admitted ones stay in flight: a window counts requests sent, not requests answered.
    upstream.hold()
    sending = asyncio.gather(*(send(proxy, key) for _ in range(20)))
    await upstream.requests_arrived(5)
    upstream.release()
    responses = await sending

    refused = [r for r in responses if r.status == 429]
    assert sorted(r.status for r in responses) == [200] * 5 + [429] * 15
    assert [await error_of(r) for r in refused] == [(429, "RATE_LIMITED", None)] * 15
    assert all(1 <= retry_after(r) <= 2 for r in refused)
    assert len(upstream.requests) == 5


async def test_rate_limit_refusal_says_the_limit_and_when_to_retry(proxy: Proxy) -> None:
    """The 429 names the limit and carries Retry-After in whole seconds, at most the window."""
    key = await limited_key(proxy, 1, 60)

    first = await send(proxy, key)
    second = await send(proxy, key)
    body = await second.json()

    assert first.status == 200
    assert second.status == 429
    assert 59 <= retry_after(second) <= 60
    assert body["error"] == "RATE_LIMITED"
    assert body["message"].startswith("the key's rate limit of 1 requests per 60 s is reached")


async def test_rate_limit_key_works_again_after_retry_after(proxy: Proxy) -> None:
    """Once Retry-After has passed, the key is admitted again, up to its limit."""
    key = await limited_key(proxy, 2, 1)
    statuses = [(await send(proxy, key)).status for _ in range(2)]
    refused = await send(proxy, key)

    await asyncio.sleep(retry_after(refused))
    again = [(await send(proxy, key)).status for _ in range(2)]

    assert statuses == [200, 200]
    assert refused.status == 429
    assert again == [200, 200]


async def test_rate_limit_refusals_count_as_denied(proxy: Proxy) -> None:
    """429s count in deniedCount and the hourly denied bucket; admitted requests as usage."""
    key = await limited_key(proxy, 3, 60)

    statuses = [(await send(proxy, key)).status for _ in range(8)]
    shown = await proxy.key(key.id)
    async with proxy.admin.get(f"/admin/api/keys/{key.id}/usage") as response:
        buckets = (await response.json())["buckets"]

    assert statuses == [200] * 3 + [429] * 5
    assert (shown["usageCount"], shown["deniedCount"]) == (3, 5)
    assert (sum(b["allowed"] for b in buckets), sum(b["denied"] for b in buckets)) == (3, 5)


async def test_rate_limit_is_taken_only_by_requests_that_pass_every_other_check(
    proxy: Proxy, upstream: RecordingUpstream
) -> None:
    """Refusals for permission, scope, parameters or body leave the whole budget in place."""
    key = await limited_key(proxy, 2, 60, permissions={"get": True, "list": True, "create": True})
    refusals = [
        await send(proxy, key, "DELETE"),
        await send(proxy, key, "GET", SHARES),
        await send(proxy, key, "GET", f"{SHARES}?contents=1&limit=0"),
        await send(proxy, key, "GET", f"{SHARES}/not.a.uuid"),
        await send(proxy, key, "POST", SHARES, data=b"{", headers={"Content-Type": "text/plain"}),
        await send(proxy, key, "POST", SHARES, json={"name": "no content id"}),
        await send(
            proxy, key, "POST", SHARES, data=b"{", headers={"Content-Type": "application/json"}
        ),
    ]

    admitted = [
        (await send(proxy, key)).status,
        (await send(proxy, key, "POST", SHARES, json={"contentId": 1})).status,
    ]
    over = await send(proxy, key)

    assert [r.status for r in refusals] == [403, 403, 400, 400, 415, 400, 400]
    assert admitted == [200, 200]
    assert over.status == 429
    assert len(upstream.requests) == 2


async def test_rate_limit_other_refusals_keep_their_own_answer_when_over_the_limit(
    proxy: Proxy,
) -> None:
    """Over its limit, a key's request that fails another check gets that check's answer."""
    key = await limited_key(proxy, 1, 60, permissions={"get": True})
    assert (await send(proxy, key)).status == 200

    forbidden = await send(proxy, key, "DELETE")
    limited = await send(proxy, key)

    assert await error_of(forbidden) == (403, "OPERATION_NOT_ALLOWED", None)
    assert "Retry-After" not in forbidden.headers
    assert limited.status == 429


async def test_rate_limit_set_and_cleared_through_the_admin_api_applies_at_once(
    proxy: Proxy,
) -> None:
    """A limit added by PATCH holds from the next request; cleared, the key is unlimited."""
    key = await proxy.create_key(permissions=ALL)
    unlimited = [(await send(proxy, key)).status for _ in range(10)]

    await proxy.patch_key(key.id, rateLimit={"requests": 2, "perSeconds": 60})
    limited = [(await send(proxy, key)).status for _ in range(4)]
    await proxy.patch_key(key.id, rateLimit=None)
    cleared = [(await send(proxy, key)).status for _ in range(4)]

    assert unlimited == [200] * 10
    # Requests made while the key had no limit are not in its window.
    assert limited == [200, 200, 429, 429]
    assert cleared == [200] * 4


async def test_rate_limit_of_one_key_leaves_others_alone(proxy: Proxy) -> None:
    """Each key has its own budget; a key without a limit is never refused."""
    tight = await limited_key(proxy, 1, 60)
    other = await limited_key(proxy, 1, 60)
    free = await proxy.create_key(permissions=ALL)

    statuses = [(await send(proxy, k)).status for k in (tight, tight, other, free, free, free)]

    assert statuses == [200, 429, 200, 200, 200, 200]


async def test_rate_limit_with_redis_unreachable_holds_per_process(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """A gateway whose Redis does not answer starts, serves, and limits each key on its own."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    proxy = await start_proxy(upstream=upstream.config(), rate_limits={"store": closed})
    key = await limited_key(proxy, 3, 60)
    free = await proxy.create_key(permissions=ALL)

    statuses = [(await send(proxy, key)).status for _ in range(5)]
    unlimited = [(await send(proxy, free)).status for _ in range(3)]

    async with proxy.admin.get("/metrics") as response:
        metrics = await response.text()

    limiter = proxy.state.limiter
    assert statuses == [200, 200, 200, 429, 429]
    assert unlimited == [200, 200, 200]
    assert isinstance(limiter, RedisLimiter)
    # Only limited keys ask the limiter; every one of their requests was decided locally.
    assert limiter.fallbacks == 5
    assert "\nshare_gateway_rate_limit_fallbacks_total 5.0\n" in metrics


async def test_rate_limit_in_redis_for_a_gateway(
    start_proxy: StartProxy, upstream: RecordingUpstream, redis_prefix: str
) -> None:
    """With rate_limits.store a Redis URL, a key's window lives in Redis under its id."""
    proxy = await start_proxy(
        upstream=upstream.config(),
        rate_limits={"store": REDIS_URL, "redis_prefix": redis_prefix},
    )
    key = await limited_key(proxy, 2, 60)

    statuses = [(await send(proxy, key)).status for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert keys_under(redis_prefix) == [f"{redis_prefix}:rate:{key.id}"]
    assert isinstance(proxy.state.limiter, RedisLimiter)
    assert proxy.state.limiter.fallbacks == 0
