"""GET /metrics: real gateways on real ports, real traffic, and the series it leaves."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import CONTENT_TYPE
from gateway.workers import METRICS_DIR_ENV
from tests.conftest import test_settings as settings_in
from tests.faults.test_store_faults import locked, short_busy_timeout
from tests.processes import ADMIN_TOKEN, SECRET_KEY, GatewayProcess
from tests.proxy.wire import ALL, SHARES, Proxy, StartProxy, bearer, error_of
from tests.test_workers import children, wait_for_children
from tests.upstreams import (
    UPSTREAM_KEY,
    Answer,
    RecordingUpstream,
    RefusingUpstream,
    ScriptedUpstream,
    Upstream,
    never_answer,
)

REQUESTS = "share_gateway_requests_total"
DENIALS = "share_gateway_denials_total"
UPSTREAM_SECONDS = "share_gateway_upstream_request_duration_seconds"
UPSTREAM_ERRORS = "share_gateway_upstream_errors_total"

Labels = tuple[tuple[str, str], ...]


class Scrape:
    """One /metrics answer, parsed with prometheus-client's own text parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.series: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """A series' value; 0 for a series not (yet) shown."""
        return self.series.get((name, tuple(sorted(labels.items()))), 0.0)

    def table(self, name: str, *label_names: str) -> dict[tuple[str, ...], float]:
        """Every series of one name, by the values of the labels named (all must be there)."""
        found: dict[tuple[str, ...], float] = {}
        for (sample_name, labels), value in self.series.items():
            if sample_name == name:
                by_name = dict(labels)
                assert set(by_name) == set(label_names), labels
                found[tuple(by_name[label] for label in label_names)] = value
        return found


async def scrape(clients: Proxy | aiohttp.ClientSession, url: str = "") -> Scrape:
    session = clients.admin if isinstance(clients, Proxy) else clients
    async with session.get(url + "/metrics", headers=bearer(ADMIN_TOKEN)) as response:
        text = await response.text()
        assert response.status == 200, text
        assert response.headers["Content-Type"] == CONTENT_TYPE
    return Scrape(text)


async def scrape_until(
    proxy: Proxy, done: Callable[[Scrape], bool], wait_s: float = 10.0
) -> Scrape:
    """Scrape until `done` holds (a background flush has run, say); the last scrape."""
    deadline = time.monotonic() + wait_s
    while True:
        found = await scrape(proxy)
        if done(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def send(
    proxy: Proxy,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> int:
    async with proxy.public.request(method, path, headers=headers or {}, **kwargs) as response:
        await response.read()
        return response.status


# --- requests by operation and status ------------------------------------------------------


async def test_metrics_count_requests_by_operation_and_status(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Each answer is counted once under its operation (none off the share routes) and status."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    key = await proxy.create_key(permissions=ALL)
    auth = key.auth
    body = {"contentId": "1"}

    statuses = [
        await send(proxy, "GET", f"{SHARES}/abc", auth),
        await send(proxy, "GET", f"{SHARES}?spaceKeys=DOCS", auth),
        await send(proxy, "POST", SHARES, auth, json=body),
        await send(proxy, "PUT", f"{SHARES}/abc", auth, json={"name": "n"}),
        await send(proxy, "PATCH", f"{SHARES}/abc", auth, json={"name": "n"}),
        await send(proxy, "DELETE", f"{SHARES}/abc", auth),
        await send(proxy, "GET", "/healthz"),
        await send(proxy, "GET", "/no/such/path"),
        await send(proxy, "POST", "/healthz"),
    ]
    upstream.answer = Answer.json(404, {"message": "no such share"})
    statuses.append(await send(proxy, "GET", f"{SHARES}/gone", auth))
    found = await scrape(proxy)

    assert statuses == [200] * 7 + [404, 405, 404]
    assert found.table(REQUESTS, "operation", "status") == {
        ("GET", "200"): 1,
        ("GET", "404"): 1,
        ("LIST", "200"): 1,
        ("CREATE", "200"): 1,
        ("UPDATE", "200"): 2,
        ("DELETE", "200"): 1,
        ("none", "200"): 1,
        ("none", "404"): 1,
        ("none", "405"): 1,
    }
    assert found.table(DENIALS, "reason") == {}


# --- denials by reason ---------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A refused request: the key it is made with (None: no key), and how it is sent."""

    key: dict[str, Any] | None
    method: str
    path: str
    kwargs: dict[str, Any]


PAST = (datetime.now(UTC) - timedelta(days=1)).isoformat()
FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()

REFUSALS = {
    "UNAUTHORIZED": (401, Refusal(None, "GET", f"{SHARES}/abc", {})),
    "KEY_EXPIRED": (401, Refusal({"notValidAfter": PAST}, "GET", f"{SHARES}/abc", {})),
    "KEY_NOT_YET_VALID": (401, Refusal({"notValidBefore": FUTURE}, "GET", f"{SHARES}/abc", {})),
    "IP_NOT_ALLOWED": (403, Refusal({"allowedIps": ["192.0.2.0/24"]}, "GET", f"{SHARES}/a", {})),
    "OPERATION_NOT_ALLOWED": (
        403,
        Refusal({"permissions": {"get": True}}, "DELETE", f"{SHARES}/abc", {}),
    ),
    "FORBIDDEN": (403, Refusal({}, "GET", SHARES, {})),
    "BAD_REQUEST": (400, Refusal({}, "GET", f"{SHARES}?spaceKeys=A&sortOrder=up", {})),
    "PAYLOAD_TOO_LARGE": (
        413,
        Refusal({}, "POST", SHARES, {"json": {"contentId": "1", "name": "x" * 300}}),
    ),
    "UNSUPPORTED_MEDIA_TYPE": (415, Refusal({}, "POST", SHARES, {"data": b"contentId=1"})),
}


@pytest.mark.parametrize(("reason", "case"), REFUSALS.items(), ids=list(REFUSALS))
async def test_metrics_count_denials_by_reason(
    start_proxy: StartProxy,
    upstream: RecordingUpstream,
    reason: str,
    case: tuple[int, Refusal],
) -> None:
    """A refusal is counted once, under the error code the client got, and nothing else is."""
    status, refusal = case
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5), server={"max_body_bytes": 200})
    headers: dict[str, str] = {}
    if refusal.key is not None:
        fields = {"permissions": ALL, **refusal.key}
        headers = (await proxy.create_key(**fields)).auth

    async with proxy.public.request(
        refusal.method, refusal.path, headers=headers, **refusal.kwargs
    ) as response:
        answered = await error_of(response)
    found = await scrape(proxy)

    assert answered[:2] == (status, reason)
    assert found.table(DENIALS, "reason") == {(reason,): 1}
    assert sum(found.table(REQUESTS, "operation", "status").values()) == 1
    assert found.value(REQUESTS, operation=refusal_operation(refusal), status=str(status)) == 1
    assert upstream.requests == []


async def test_metrics_count_rate_limited_requests_as_denials(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """A request over the key's rate limit is a RATE_LIMITED denial, taken from its answer."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5), metrics={"per_key": True})
    key = await proxy.create_key(permissions=ALL, rateLimit={"requests": 1, "perSeconds": 3600})

    statuses = [await send(proxy, "GET", f"{SHARES}/abc", key.auth) for _ in range(2)]
    found = await scrape(proxy)

    assert statuses == [200, 429]
    assert found.table(DENIALS, "reason", "key_id") == {("RATE_LIMITED", key.id): 1}
    assert found.table(REQUESTS, "operation", "status", "key_id") == {
        ("GET", "200", key.id): 1,
        ("GET", "429", key.id): 1,
    }


def refusal_operation(refusal: Refusal) -> str:
    if refusal.method == "GET":
        return "GET" if refusal.path.startswith(f"{SHARES}/") else "LIST"
    return {"POST": "CREATE", "DELETE": "DELETE"}[refusal.method]


# --- the upstream ----------------------------------------------------------------------------


async def test_metrics_observe_upstream_latency_by_operation(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Every call upstream is one observation under its operation; refusals are none."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    key = await proxy.create_key(permissions=ALL)

    for _ in range(3):
        assert await send(proxy, "GET", f"{SHARES}/abc", key.auth) == 200
    for _ in range(2):
        assert await send(proxy, "POST", SHARES, key.auth, json={"contentId": "1"}) == 200
    assert await send(proxy, "GET", SHARES, key.auth) == 403
    found = await scrape(proxy)

    counts = found.table(UPSTREAM_SECONDS + "_count", "operation")
    assert counts == {("GET",): 3, ("CREATE",): 2}
    for operation, count in (("GET", 3), ("CREATE", 2)):
        buckets = {
            float(dict(labels)["le"]): value
            for (name, labels), value in found.series.items()
            if name == UPSTREAM_SECONDS + "_bucket" and dict(labels)["operation"] == operation
        }
        assert buckets[float("inf")] == count
        assert list(buckets.values()) == sorted(buckets.values())
        assert found.value(UPSTREAM_SECONDS + "_sum", operation=operation) > 0
    assert len(upstream.requests) == 5


@pytest.mark.parametrize(
    ("make", "settings", "status", "kind"),
    [
        pytest.param(RefusingUpstream, {"retries": 1}, 502, "unavailable", id="refused"),
        pytest.param(
            lambda: ScriptedUpstream(never_answer), {"timeout_s": 0.3}, 504, "timeout", id="hangs"
        ),
    ],
)
async def test_metrics_count_upstream_errors_by_kind(
    start_proxy: StartProxy,
    make: Callable[[], Upstream],
    settings: dict[str, Any],
    status: int,
    kind: str,
) -> None:
    """An upstream that refuses or hangs is one error of its kind per request, retries or not."""
    with make() as bad:
        proxy = await start_proxy(upstream=bad.config(**settings))
        key = await proxy.create_key(permissions=ALL)
        statuses = [await send(proxy, "GET", f"{SHARES}/abc", key.auth) for _ in range(2)]
        found = await scrape(proxy)

    assert statuses == [status] * 2
    assert found.table(UPSTREAM_ERRORS, "operation", "kind") == {("GET", kind): 2}
    assert found.value(UPSTREAM_SECONDS + "_count", operation="GET") == 2
    assert found.table(REQUESTS, "operation", "status") == {("GET", str(status)): 2}
    # The gateway refused nothing: the upstream failed.
    assert found.table(DENIALS, "reason") == {}


# --- the key cache, usage flushes, key counts -------------------------------------------------


async def test_metrics_count_key_cache_hits_and_misses(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Every key lookup is a hit or a miss, a known or unknown key read once then remembered."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    key = await proxy.create_key(permissions=ALL)
    before = await scrape(proxy)
    unknown = bearer(key.value[:3] + "x" * 32 + key.value[35:])
    well_formed_unknown = await proxy.create_key(name="gone")
    await proxy.delete_key(well_formed_unknown.id)

    for _ in range(20):
        assert await send(proxy, "GET", f"{SHARES}/abc", key.auth) == 200
    for _ in range(5):
        assert await send(proxy, "GET", f"{SHARES}/abc", well_formed_unknown.auth) == 401
    assert await send(proxy, "GET", f"{SHARES}/abc", unknown) == 401
    found = await scrape(proxy)
    hits = found.value("share_gateway_key_cache_hits_total")
    misses = found.value("share_gateway_key_cache_misses_total")
    state = proxy.state

    # A malformed value is refused before any lookup; the other 25 requests look their key up.
    assert (before.value("share_gateway_key_cache_hits_total"), hits + misses) == (0, 25)
    # The cache is dropped on each key change, so each key is read at least once (and the
    # change poll may drop it once more), every other lookup answered from memory.
    assert 2 <= misses <= 4
    assert (hits, misses) == (state.cache.hits, state.cache.lookups)


async def test_metrics_count_usage_flushes_and_lag(
    start_proxy: StartProxy, upstream: RecordingUpstream, tmp_path: Path
) -> None:
    """Flushes are timed, failed ones counted, and the lag grows while the store refuses them."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    key = await proxy.create_key(permissions=ALL)
    flushes = "share_gateway_usage_flush_duration_seconds_count"
    failures = "share_gateway_usage_flush_failures_total"
    lag = "share_gateway_usage_flush_lag_seconds"

    assert await send(proxy, "GET", f"{SHARES}/abc", key.auth) == 200
    flushed = await scrape_until(proxy, lambda s: s.value(flushes) >= 1)
    await short_busy_timeout(proxy.gateway)
    with locked(tmp_path / "gateway-1" / "gateway.db"):
        assert await send(proxy, "GET", f"{SHARES}/abc", key.auth) == 200
        failing = await scrape_until(proxy, lambda s: s.value(failures) >= 2 and s.value(lag) > 1)
    recovered = await scrape_until(proxy, lambda s: s.value(lag) < 1)
    stored = await proxy.key(key.id)

    assert (flushed.value(flushes), flushed.value(failures)) == (1, 0)
    assert flushed.value(lag) < 1
    assert failing.value(failures) >= 2 and failing.value(lag) > 1
    assert failing.value(flushes) >= 1 + failing.value(failures)
    assert recovered.value(lag) < 1
    assert recovered.value(flushes) > failing.value(flushes)
    last = recovered.value("share_gateway_usage_last_flush_timestamp_seconds")
    assert abs(time.time() - last) < 5
    assert stored["usageCount"] == 2


async def test_metrics_count_keys_by_state_in_sqlite(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Keys are counted when scraped: active, inactive (outside their window) and deleted."""
    await count_keys_by_state(await start_proxy(upstream=upstream.config(timeout_s=5)))


async def test_metrics_count_keys_by_state_in_postgresql(
    start_proxy: StartProxy, upstream: RecordingUpstream, pg_url: str
) -> None:
    """A PostgreSQL store counts its keys by state the same way."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5), store={"url": pg_url})
    await count_keys_by_state(proxy)


async def count_keys_by_state(proxy: Proxy) -> None:
    """Make keys in each state in an empty store; a scrape before and after counts them."""
    empty = await scrape(proxy)
    for name in ("a", "b", "c"):
        await proxy.create_key(name=name)
    await proxy.create_key(name="expired", notValidAfter=PAST)
    await proxy.create_key(name="later", notValidBefore=FUTURE)
    for name in ("gone", "gone too"):
        await proxy.delete_key((await proxy.create_key(name=name)).id)
    found = await scrape(proxy)

    assert empty.table("share_gateway_keys", "state") == {
        ("active",): 0,
        ("inactive",): 0,
        ("deleted",): 0,
    }
    assert found.table("share_gateway_keys", "state") == {
        ("active",): 3,
        ("inactive",): 2,
        ("deleted",): 2,
    }


async def test_metrics_answer_without_key_counts_when_the_store_fails(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """A store that cannot be read costs the scrape the key counts, not the other series."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    assert await send(proxy, "GET", "/healthz") == 200
    await proxy.state.store.close()

    found = await scrape(proxy)

    assert found.table("share_gateway_keys", "state") == {}
    assert found.value(REQUESTS, operation="none", status="200") == 1


# --- the admin token ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token-0123456789",
        f"Basic {ADMIN_TOKEN}",
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
    ],
)
async def test_metrics_need_the_admin_token(
    start_proxy: StartProxy, upstream: RecordingUpstream, authorization: str | None
) -> None:
    """Without the admin token, /metrics is a 401 in the JSON error body and shows nothing."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    headers = {} if authorization is None else {"Authorization": authorization}

    async with aiohttp.ClientSession() as session:
        response = await session.get(proxy.gateway.admin_url + "/metrics", headers=headers)
        status, code, field = await error_of(response)
        challenge = response.headers.get("WWW-Authenticate", "")

    assert (status, code, field) == (401, "UNAUTHORIZED", None)
    assert challenge.startswith("Bearer")


async def test_metrics_are_not_on_the_public_listener(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """Clients of the public listener cannot read the metrics, with or without a token."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))

    status = await send(proxy, "GET", "/metrics", bearer(ADMIN_TOKEN))

    assert status == 404


# --- secrets and key ids -------------------------------------------------------------------------


@pytest.mark.parametrize("per_key", [False, True])
async def test_metrics_hold_no_secret_after_a_whole_session(
    start_proxy: StartProxy, upstream: RecordingUpstream, per_key: bool
) -> None:
    """Create, use, reveal, download, rotate, refuse and delete: no value or token in the text."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5), metrics={"per_key": per_key})
    key = await proxy.create_key(permissions=ALL, allowedIps=["127.0.0.1"])
    values = [key.value]
    async with proxy.admin.post(f"/admin/api/keys/{key.id}/reveal") as r:
        values.append((await r.json())["value"])
    async with proxy.admin.get(f"/admin/api/keys/{key.id}/download") as r:
        values.append((await r.text()).strip())
    async with proxy.admin.post(f"/admin/api/keys/{key.id}/rotate", json={}) as r:
        rotated = (await r.json())["value"]
    values.append(rotated)
    for value in (key.value, rotated):
        assert await send(proxy, "POST", SHARES, bearer(value), json={"contentId": "1"}) == 200
        assert await send(proxy, "GET", SHARES, bearer(value)) == 403
    assert await send(proxy, "GET", f"{SHARES}/abc", bearer(values[0][:-1] + "0")) == 401
    assert await send(proxy, "GET", f"{SHARES}/abc", bearer(ADMIN_TOKEN)) == 401
    await proxy.delete_key(key.id)
    assert await send(proxy, "GET", f"{SHARES}/abc", bearer(rotated)) == 401
    await asyncio.sleep(0.3)  # one usage flush, so its series are in the text too

    text = (await scrape(proxy)).text

    secrets = {*values, ADMIN_TOKEN, UPSTREAM_KEY, SECRET_KEY}
    assert [secret for secret in secrets if secret in text] == []
    # Not even a part long enough to narrow a guess (the masked form shows three characters).
    assert [v for v in values if any(v[i : i + 8] in text for i in range(len(v) - 7))] == []
    assert (key.id in text) is per_key


async def test_metrics_per_key_off_shows_no_key_id(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """With metrics.per_key false (the default) no series carries a key_id label."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    key = await proxy.create_key(permissions={"create": True})
    assert await send(proxy, "POST", SHARES, key.auth, json={"contentId": "1"}) == 200
    assert await send(proxy, "DELETE", f"{SHARES}/abc", key.auth) == 403

    found = await scrape(proxy)

    assert found.table(REQUESTS, "operation", "status") == {
        ("CREATE", "200"): 1,
        ("DELETE", "403"): 1,
    }
    assert found.table(DENIALS, "reason") == {("OPERATION_NOT_ALLOWED",): 1}
    assert not any("key_id" in dict(labels) for _, labels in found.series)
    assert key.id not in found.text


async def test_metrics_per_key_on_shows_each_keys_requests_and_denials(
    start_proxy: StartProxy, upstream: RecordingUpstream
) -> None:
    """With metrics.per_key true, requests and denials of known keys carry their key id."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5), metrics={"per_key": True})
    one = await proxy.create_key(name="one", permissions={"create": True})
    two = await proxy.create_key(name="two", permissions=ALL)
    for _ in range(2):
        assert await send(proxy, "POST", SHARES, one.auth, json={"contentId": "1"}) == 200
    assert await send(proxy, "DELETE", f"{SHARES}/abc", one.auth) == 403
    assert await send(proxy, "DELETE", f"{SHARES}/abc", two.auth) == 200
    assert await send(proxy, "DELETE", f"{SHARES}/abc") == 401
    assert await send(proxy, "GET", "/healthz") == 200

    found = await scrape(proxy)

    # Requests without a known key have an empty key_id, which Prometheus stores as no label.
    assert found.table(REQUESTS, "operation", "status", "key_id") == {
        ("CREATE", "200", one.id): 2,
        ("DELETE", "403", one.id): 1,
        ("DELETE", "200", two.id): 1,
        ("DELETE", "401", ""): 1,
        ("none", "200", ""): 1,
    }
    assert found.table(DENIALS, "reason", "key_id") == {
        ("OPERATION_NOT_ALLOWED", one.id): 1,
        ("UNAUTHORIZED", ""): 1,
    }


async def test_metrics_per_key_needs_a_restart(
    start_proxy: StartProxy, upstream: RecordingUpstream, tmp_path: Path
) -> None:
    """A reload that turns metrics.per_key on keeps it off and names it as needing a restart."""
    proxy = await start_proxy(upstream=upstream.config(timeout_s=5))
    new = settings_in(
        tmp_path / "gateway-1", upstream=upstream.config(timeout_s=5), metrics={"per_key": True}
    )

    kept = await proxy.gateway.reload(new)

    assert "metrics.per_key" in kept
    assert proxy.state.settings.metrics.per_key is False
    assert proxy.state.metrics.per_key is False


# --- several workers ------------------------------------------------------------------------------


def metrics_dir_of(pid: int) -> Path:
    """The metrics directory in a worker's environment, read from /proc."""
    environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    prefix = METRICS_DIR_ENV.encode() + b"="
    found = [entry[len(prefix) :] for entry in environ if entry.startswith(prefix)]
    assert len(found) == 1, environ
    return Path(found[0].decode())


async def serving(process: GatewayProcess, count: int, wait_s: float = 15) -> None:
    """Wait until `count` workers have said they listen, so the kernel can pick any of them."""
    deadline = time.monotonic() + wait_s
    while process.logs().count("serving shares on") < count:
        assert time.monotonic() < deadline, process.logs()
        await asyncio.sleep(0.05)


def counted_by(directory: Path, pid: int) -> float:
    """CREATE 201 answers in one worker's own file, as that worker wrote them."""
    files = [str(directory / f"counter_{pid}.db")]
    families = MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
    return float(
        sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == REQUESTS and sample.labels == {"operation": "CREATE", "status": "201"}
        )
    )


async def test_metrics_with_workers_sum_every_worker(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    """Any worker answering a scrape shows all workers' counts, a killed one's included."""
    process = gateway_process({"server": {"workers": 2}})
    assert process.process is not None
    workers = wait_for_children(process.process.pid, 2)
    directory = metrics_dir_of(workers[0])
    await serving(process, 2)
    async with aiohttp.ClientSession(headers=process.admin_headers) as admin:
        created = await admin.post(
            process.admin_url + "/admin/api/keys",
            json={"name": "w", "permissions": {"create": True}},
        )
        key = await created.json()

    # A new connection per request lets the kernel pick a worker each time.
    connector = aiohttp.TCPConnector(force_close=True, limit=20)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(
                process.public_url + "/webapi/share",
                json={"contentId": "1"},
                headers=bearer(key["value"]),
            ) as response:
                return response.status

        statuses: list[int] = []
        for _ in range(10):
            statuses += await asyncio.gather(*(one() for _ in range(20)))
        scrapes = [await scrape(session, process.admin_url) for _ in range(10)]
        per_worker = [counted_by(directory, pid) for pid in workers]

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = children(process.process.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            await asyncio.sleep(0.1)
        after_kill = [await scrape(session, process.admin_url) for _ in range(10)]

    assert process.stop() == 0

    assert statuses == [201] * 200
    assert all(0 < count < 200 for count in per_worker), per_worker
    assert sum(per_worker) == 200
    for found in scrapes + after_kill:
        assert found.table(REQUESTS, "operation", "status") == {("CREATE", "201"): 200}
        assert (
            found.value("share_gateway_key_cache_hits_total")
            + found.value("share_gateway_key_cache_misses_total")
            == 200
        )
        assert found.table(UPSTREAM_SECONDS + "_count", "operation") == {("CREATE",): 200}
        # One last-flush time for the whole run, the oldest live worker's, and its lag.
        assert len(found.table("share_gateway_usage_last_flush_timestamp_seconds")) == 1
        assert 0 <= found.value("share_gateway_usage_flush_lag_seconds") < 5
        assert found.table("share_gateway_keys", "state")[("active",)] == 1
    assert not directory.exists()
