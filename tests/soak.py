"""The soak: many clients mixing every share operation through a real gateway process.

tests/test_soak.py runs a short one in CI; `python bench/soak.py` runs the full one
and prints its report. Both hold the gateway to the same checks:

- no answer made by the gateway itself as a 5xx (500, 502, 503, 504), no socket error;
- usage exact: the key's usageCount, per the admin API once a flush has written it and
  per the store file after shutdown, equals the requests the gateway forwarded;
- no growth of resident memory (VmRSS) or open file descriptors from the end of the
  warm-up to the end of the run, beyond the tolerances below.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.processes import GatewayProcess

SHARES = "/webapi/share"
ALL = dict.fromkeys(("get", "list", "create", "update", "delete"), True)

# Each client draws its next operation from this cycle, so the mix is the same every run:
# 4 GET, 2 LIST, 2 CREATE, 1 UPDATE (PUT), 1 UPDATE (PATCH), 1 DELETE in 11 requests.
MIX = ("CREATE", "GET", "LIST", "GET", "UPDATE", "GET", "CREATE", "LIST", "PATCH", "GET", "DELETE")
# Answers the upstream gives to requests the gateway forwarded; a 404 is a share another
# client's DELETE removed first, and is the reference backend's own answer.
FORWARDED = {200, 201, 204, 404}

RSS_TOLERANCE_KIB = 16 * 1024
"""Resident memory may grow this much after the warm-up (allocator arenas settling)."""
FD_TOLERANCE = 10
"""Open descriptors may differ this much between two quiet moments (kept-alive upstream
connections are closed and opened as the pool sees fit)."""


@dataclass(frozen=True)
class Sample:
    """The gateway process's resident memory and open descriptors at one moment."""

    rss_kib: int
    fds: int

    @classmethod
    def of(cls, pid: int) -> Sample:
        rss = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return cls(rss, len(os.listdir(f"/proc/{pid}/fd")))


@dataclass
class SoakReport:
    """What a soak did and what it found."""

    clients: int
    duration_s: float
    warmup_s: float
    operations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    forwarded: int = 0
    usage_admin_api: int | None = None
    usage_stored: int | None = None
    after_warmup: Sample | None = None
    at_end: Sample | None = None
    peak: Sample | None = None
    exit_code: int | None = None
    # The measured part, after the warm-up: its requests and how long it took.
    measured_requests: int = 0
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.operations.values())

    def problems(self) -> list[str]:
        """Every check the run failed, in words; empty when it passed."""
        found = [f"{count} x {what}" for what, count in sorted(self.failures.items())]
        if self.usage_admin_api != self.forwarded:
            found.append(f"usage per admin API {self.usage_admin_api} != {self.forwarded}")
        if self.usage_stored != self.forwarded:
            found.append(f"usage in the store {self.usage_stored} != {self.forwarded}")
        if self.exit_code != 0:
            found.append(f"the gateway exited with {self.exit_code} on SIGTERM")
        if self.after_warmup is not None and self.at_end is not None:
            grown = self.at_end.rss_kib - self.after_warmup.rss_kib
            if grown > RSS_TOLERANCE_KIB:
                found.append(f"VmRSS grew {grown} KiB after warm-up (> {RSS_TOLERANCE_KIB})")
            if self.at_end.fds > self.after_warmup.fds + FD_TOLERANCE:
                found.append(
                    f"open descriptors grew {self.after_warmup.fds} -> {self.at_end.fds}"
                    f" (> {FD_TOLERANCE})"
                )
        else:
            found.append("no memory or descriptor samples")
        return found

    def lines(self) -> list[str]:
        """The report for people."""
        mib = 1024

        def sample(s: Sample | None) -> str:
            return "-" if s is None else f"VmRSS {s.rss_kib / mib:.1f} MiB, {s.fds} open fds"

        rate = self.measured_requests / self.elapsed_s if self.elapsed_s else 0.0
        return [
            f"clients: {self.clients}, duration: {self.duration_s:g} s"
            f" after a warm-up of {self.warmup_s:g} s",
            f"requests: {self.requests} in all, {self.measured_requests} after the warm-up"
            f" ({rate:.0f}/s); "
            + ", ".join(f"{op} {n}" for op, n in sorted(self.operations.items())),
            "statuses: " + ", ".join(f"{s} x {n}" for s, n in sorted(self.statuses.items())),
            f"forwarded: {self.forwarded}; usageCount: admin API {self.usage_admin_api},"
            f" store after SIGTERM {self.usage_stored}; exit code {self.exit_code}",
            f"after warm-up: {sample(self.after_warmup)}",
            f"at the end:    {sample(self.at_end)}",
            f"peak:          {sample(self.peak)}",
            "outcome: " + ("; ".join(self.problems()) or "passed"),
        ]


def soak_config(folder: Path) -> dict[str, Any]:
    """The gateway's settings for a soak: the embedded backend, logs at warning."""
    return {
        "upstream": {"url": "embedded", "max_connections": 200},
        "usage": {"flush_interval_s": 1},
        # An access line per request would make the soak a test of the log file.
        "logging": {"level": "warning"},
    }


class _Client:
    """One client: its own shares, the next operation of the mix, and its tallies."""

    def __init__(self, number: int, session: aiohttp.ClientSession, auth: dict[str, str]) -> None:
        self.number = number
        self.session = session
        self.auth = auth
        self.shares: list[str] = []
        self.turn = number  # Clients start at different points of the mix.

    async def run(self, until: float, report: SoakReport) -> None:
        while time.monotonic() < until:
            operation = MIX[self.turn % len(MIX)]
            self.turn += 1
            await self.one(operation, report)

    async def one(self, operation: str, report: SoakReport) -> None:
        method, path, body = self.request(operation)
        report.operations[operation] += 1
        try:
            async with self.session.request(method, path, json=body, headers=self.auth) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            report.failures[f"{operation}: {type(exc).__name__}"] += 1
            return
        report.statuses[status] += 1
        if status not in FORWARDED:
            report.failures[f"{operation}: answered {status}"] += 1
            return
        report.forwarded += 1
        if operation == "CREATE" and status == 201:
            self.shares.append(_uuid_of(payload))
        if operation == "DELETE" and self.shares and status in (204, 404):
            self.shares.pop(0)

    def request(self, operation: str) -> tuple[str, str, object]:
        n = self.turn
        target = f"{SHARES}/{self.shares[0] if self.shares else f'none-{self.number}'}"
        if operation == "CREATE":
            return "POST", SHARES, {"contentId": n + 1, "spaceKey": f"S{self.number % 10}"}
        if operation == "GET":
            return "GET", target, None
        if operation == "LIST":
            return "GET", f"{SHARES}?spaceKeys=S{self.number % 10}&limit=20", None
        if operation == "UPDATE":
            return "PUT", target, {"name": f"renamed {n}", "showComments": n % 2 == 0}
        if operation == "PATCH":
            return "PATCH", target, {"description": f"patched {n}"}
        return "DELETE", target, None


def _uuid_of(payload: bytes) -> str:
    uuid: str = json.loads(payload)["uuid"]
    return uuid


async def _load(
    process: GatewayProcess, auth: dict[str, str], clients: int, seconds: float, report: SoakReport
) -> None:
    """`clients` clients for `seconds`, each on kept-alive connections of its own."""
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        base_url=process.public_url, connector=connector, timeout=timeout
    ) as session:
        until = time.monotonic() + seconds
        workers = [_Client(n, session, auth) for n in range(clients)]
        await asyncio.gather(*(worker.run(until, report) for worker in workers))


async def _watch(pid: int, report: SoakReport, stop: asyncio.Event) -> None:
    """Keep the largest memory and descriptor figures seen while the load runs."""
    while not stop.is_set():
        now = Sample.of(pid)
        peak = report.peak
        report.peak = Sample(
            max(now.rss_kib, peak.rss_kib if peak else 0), max(now.fds, peak.fds if peak else 0)
        )
        await asyncio.sleep(0.5)


async def _quiet_sample(pid: int) -> Sample:
    """A sample once the connections of a finished load have closed on the gateway's side."""
    await asyncio.sleep(1.0)
    return Sample.of(pid)


async def soak(folder: Path, clients: int, duration_s: float, warmup_s: float) -> SoakReport:
    """Start a gateway in `folder`, load it, check it, stop it; the report."""
    report = SoakReport(clients, duration_s, warmup_s)
    process = GatewayProcess(folder, soak_config(folder)).start()
    try:
        assert process.process is not None
        pid = process.process.pid
        async with aiohttp.ClientSession(
            base_url=process.admin_url, headers=process.admin_headers
        ) as admin:
            async with admin.post(
                "/admin/api/keys", json={"name": "soak", "permissions": ALL}
            ) as created:
                key = await created.json()
            auth = {"Authorization": f"Bearer {key['value']}"}

            # The warm-up counts like the rest: only the samples wait for it to end.
            await _load(process, auth, clients, warmup_s, report)
            report.after_warmup = await _quiet_sample(pid)

            warmed_up, started = report.requests, time.monotonic()
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch(pid, report, stop))
            await _load(process, auth, clients, duration_s, report)
            report.elapsed_s = time.monotonic() - started
            report.measured_requests = report.requests - warmed_up
            stop.set()
            await watcher
            report.at_end = await _quiet_sample(pid)
            # Two flush intervals: what the admin API shows is then what the store holds.
            await asyncio.sleep(2.5)
            async with admin.get(f"/admin/api/keys/{key['id']}") as shown:
                report.usage_admin_api = (await shown.json())["usageCount"]
        report.exit_code = await asyncio.to_thread(process.stop, signal.SIGTERM, 60)
        with sqlite3.connect(folder / "gateway.db") as db:
            row = db.execute(
                "SELECT usage_count FROM key_usage WHERE key_id = ?", (key["id"],)
            ).fetchone()
        report.usage_stored = row[0] if row else 0
    finally:
        process.stop(signal.SIGKILL)
    return report
