"""Benchmark: the gateway against plain nginx, both in front of the same fixed upstream.

Run from the repository root with the project's Python:

    .venv/bin/python bench/run.py            # full run, about ten minutes
    .venv/bin/python bench/run.py --quick    # smoke run, about a minute

It prints a Markdown table, writes it to bench/results.md, and exits non-zero
when a run had socket errors or non-2xx answers, or a usage count was not exact.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import machine
from answers import check_share_answer
from gateway_target import GatewayProcess, key_fields
from nginx import SHARED, Nginx, start_proxy, start_upstream
from processes import Processes, wait_until_idle
from report import Summary, mib, short_count, table
from sampling import read_profile, start_py_spy
from seed import seed_keys
from warmup import touch_every_key
from wrk import WrkResult, run_wrk

RESULTS = Path(__file__).resolve().parent / "results.md"
SHARE_PATH = "/webapi/share/4f3c2a1e-9b7d-4c5e-8a61-2d0f7e9b3c58"
THROUGHPUT, LATENCY = 32, 8
BOTH = (THROUGHPUT, LATENCY)
DIRECT, NGINX, GATEWAY = "direct (fixed upstream)", "nginx proxy_pass", "gateway, 1 key stored"


@dataclass(frozen=True)
class Options:
    """How long and how much: the full run's defaults, or --quick's."""

    quick: bool
    duration_s: float
    rounds: int
    warmup_s: float
    keys: int
    rss_after: int
    workers: int
    pin: bool
    profile: Path | None

    @classmethod
    def parse(cls, argv: list[str] | None = None) -> Options:
        parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
        parser.add_argument("--quick", action="store_true", help="short smoke run")
        parser.add_argument("--duration", type=float, help="seconds a run (10; --quick 2)")
        parser.add_argument("--rounds", type=int, help="rounds of every target (3; --quick 1)")
        parser.add_argument("--keys", type=int, help="keys in the big store (100000; --quick 5000)")
        parser.add_argument(
            "--rss-after", type=int, help="requests before reading RSS (200000; --quick 20000)"
        )
        parser.add_argument(
            "--workers", type=int, default=1, help="also run a gateway with server.workers N"
        )
        parser.add_argument("--no-pin", action="store_true", help="do not pin wrk and servers")
        parser.add_argument(
            "--profile",
            type=Path,
            metavar="FILE",
            help="py-spy the gateway during one more 32-connection run (collapsed stacks)",
        )
        args = parser.parse_args(argv)
        quick = bool(args.quick)
        return cls(
            quick=quick,
            duration_s=args.duration or (2.0 if quick else 10.0),
            rounds=args.rounds or (1 if quick else 3),
            warmup_s=1.0 if quick else 2.0,
            keys=args.keys or (5_000 if quick else 100_000),
            rss_after=args.rss_after or (20_000 if quick else 200_000),
            workers=args.workers,
            pin=not args.no_pin,
            profile=args.profile,
        )


@dataclass
class Target:
    """Something wrk drives: a URL, the header it needs, the gateway behind it if any."""

    label: str
    url: str
    connections: tuple[int, ...]
    authorization: str = ""
    keys_file: Path | None = None
    gateway: GatewayProcess | None = None


@dataclass
class Bench:
    """Everything one benchmark run starts and measures."""

    options: Options
    cpus: machine.CpuPlan
    nginx_binary: str
    wrk_binary: str
    processes: Processes
    folder: Path
    upstream_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    targets: list[Target] = field(default_factory=list)
    gateways: list[GatewayProcess] = field(default_factory=list)
    results: dict[tuple[str, int], list[WrkResult]] = field(
        default_factory=lambda: defaultdict(list)
    )
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def target(self, label: str) -> Target:
        return next(t for t in self.targets if t.label == label)

    def drive(self, target: Target, connections: int, duration_s: float) -> WrkResult:
        """One wrk run; what it got through a gateway is owed to that gateway's usage."""
        result = run_wrk(
            self.wrk_binary,
            target.url,
            connections=connections,
            duration_s=duration_s,
            cpus=self.cpus.load,
            authorization=target.authorization,
            keys_file=target.keys_file,
        )
        if target.gateway is not None:
            target.gateway.sent_ok += result.ok
            target.gateway.served += result.requests
            target.gateway.in_flight_bound += connections
            target.gateway.runs += 1
        if result.socket_errors or result.non_2xx:
            self.failures.append(
                f"{target.label} at {connections} connections: {result.requests} requests, "
                f"{result.non_2xx} non-2xx, socket errors: connect {result.connect_errors}, "
                f"read {result.read_errors}, write {result.write_errors}, "
                f"timeout {result.timeouts}"
            )
        return result


def start_servers(bench: Bench) -> Nginx:
    """The fixed upstream (a listener for each gateway) and the nginx baseline in front of it."""
    listeners = ["gateway", "many-keys"] + (["workers"] if bench.options.workers > 1 else [])
    upstream = start_upstream(
        bench.processes,
        bench.nginx_binary,
        bench.folder / "upstream",
        bench.cpus.servers,
        bench.upstream_key,
        listeners,
    )
    proxy = start_proxy(
        bench.processes,
        bench.nginx_binary,
        bench.folder / "nginx",
        bench.cpus.servers,
        upstream,
        bench.upstream_key,
    )
    bench.targets += [
        Target(DIRECT, upstream.url_for(SHARED) + SHARE_PATH, BOTH, f"Bearer {bench.upstream_key}"),
        # nginx replaces the client's Authorization with the upstream key, as the gateway does.
        Target(NGINX, proxy.url + SHARE_PATH, BOTH, "Bearer client-key-replaced-by-nginx"),
    ]
    return upstream


def new_gateway(
    bench: Bench, name: str, upstream: Nginx | None, workers: int = 1
) -> GatewayProcess:
    """A gateway in its own folder: on its own listener of the fixed upstream, or embedded."""
    config: dict[str, Any] = {"url": "embedded"}
    if upstream is not None:
        config = {"url": upstream.url_for(name), "api_key": bench.upstream_key}
    gateway = GatewayProcess(name, bench.folder / name, config, workers=workers)
    gateway.upstream_listener = name if upstream is not None else None
    bench.gateways.append(gateway)
    return gateway


def add_gateway(bench: Bench, upstream: Nginx) -> None:
    """The gateway with one key, made through the admin API, with every check on."""
    gateway = new_gateway(bench, "gateway", upstream)
    gateway.start(bench.processes, bench.cpus.servers)
    gateway.checked_key, value = gateway.create_key("bench", {"get": True})
    url = gateway.public_url + SHARE_PATH
    bench.targets.append(Target(GATEWAY, url, BOTH, f"Bearer {value}", None, gateway))


def add_embedded(bench: Bench) -> None:
    """The gateway in front of its embedded reference backend, reading a share it created."""
    gateway = new_gateway(bench, "embedded", None)
    gateway.start(bench.processes, bench.cpus.servers)
    gateway.checked_key, value = gateway.create_key("bench", {"get": True, "create": True})
    share = {"contentId": "2556174", "spaceKey": "DOCS", "name": "Release notes"}
    created = gateway.call("POST", "/webapi/share", value, share)
    url = f"{gateway.public_url}/webapi/share/{created['uuid']}"
    label = "gateway, embedded backend"
    bench.targets.append(Target(label, url, BOTH, f"Bearer {value}", None, gateway))


def add_many_keys(bench: Bench, upstream: Nginx) -> None:
    """A store of many keys, driven with one of them, and with all of them in turn."""
    count = bench.options.keys
    gateway = new_gateway(bench, "many-keys", upstream)
    gateway.folder.mkdir(parents=True)
    values_file = gateway.folder / "values.txt"
    print(f"creating {count:,} keys through the key service ...", flush=True)
    started = time.monotonic()
    fields = key_fields({"get": True})
    values = seed_keys(gateway.db_path, gateway.secret_key, fields, count, values_file)
    bench.notes.append(f"creating {count:,} keys took {time.monotonic() - started:.0f} s")
    gateway.start(bench.processes, bench.cpus.servers)

    url = gateway.public_url + SHARE_PATH
    label = f"gateway, {short_count(count)} keys stored"
    one, every = f"{label}, 1 in use", f"{label}, all in use"
    bench.targets.append(Target(one, url, (THROUGHPUT,), f"Bearer {values[0]}", None, gateway))
    bench.targets.append(Target(every, url, (THROUGHPUT,), "", values_file, gateway))


def add_workers(bench: Bench, upstream: Nginx) -> None:
    """The gateway with server.workers N, on every CPU, since one CPU would hold one worker."""
    workers = bench.options.workers
    gateway = new_gateway(bench, "workers", upstream, workers)
    try:
        gateway.start(bench.processes, bench.cpus.servers | bench.cpus.load)
    except RuntimeError as exc:
        bench.gateways.remove(gateway)
        bench.notes.append(f"server.workers: {workers}: the gateway did not start: {exc}")
        return
    time.sleep(1.0)
    found = len(gateway.worker_pids())
    if found == 1:
        bench.notes.append(
            f"server.workers: {workers} was accepted, but the gateway ran as one process "
            "with no workers: its row measures one process free to use every CPU"
        )
    else:
        bench.notes.append(f"server.workers: {workers}: {found} gateway processes")
    gateway.checked_key, value = gateway.create_key("bench", {"get": True})
    label = f"gateway, server.workers: {workers}, unpinned"
    url = gateway.public_url + SHARE_PATH
    bench.targets.append(Target(label, url, (THROUGHPUT,), f"Bearer {value}", None, gateway))


def preflight(bench: Bench) -> None:
    """Each target answers one request with 200 and JSON, then warms up for a moment.

    wrk counts only answers of 400 and above as errors; this is what shows that
    a target answers 2xx rather than, say, a redirect.
    """
    for target in bench.targets:
        authorization = target.authorization
        if target.keys_file is not None:
            first = target.keys_file.read_text(encoding="ascii").split()[0]
            authorization = f"Bearer {first}"
        check_share_answer(target.url, authorization)
        if target.gateway is not None:
            target.gateway.sent_ok += 1
            target.gateway.served += 1
    for target in bench.targets:
        if target.keys_file is None:
            bench.drive(target, THROUGHPUT, bench.options.warmup_s)


def warm_every_key(bench: Bench) -> None:
    """Ask once with every stored key, so that the measured runs see a full key cache."""
    for target in bench.targets:
        if target.keys_file is None or target.gateway is None:
            continue
        values = target.keys_file.read_text(encoding="ascii").split()
        print(f"warming the key cache with {len(values):,} keys ...", flush=True)
        started = time.monotonic()
        ok, failed = touch_every_key(target.url, values)
        target.gateway.sent_ok += ok
        target.gateway.served += ok + failed
        settled = wait_until_idle(target.gateway.pid)
        bench.notes.append(
            f"asking once with each of the {len(values):,} keys took "
            f"{time.monotonic() - started:.0f} s; that gateway then held "
            f"{mib(target.gateway.rss_kib())} (VmRSS), and was idle again {settled:.0f} s later"
        )
        if failed:
            bench.failures.append(f"{target.label}: {failed} non-2xx while warming the keys")


def measure(bench: Bench) -> None:
    """The rounds: every target in turn at each connection count, the order rotated.

    Alternating targets spreads any drift of the machine (another tenant, a
    thermal limit) over all of them, instead of charging it to whichever ran last.
    """
    options = bench.options
    for number in range(options.rounds):
        for connections in BOTH:
            runnable = [t for t in bench.targets if connections in t.connections]
            shift = number % len(runnable)
            for target in runnable[shift:] + runnable[:shift]:
                result = bench.drive(target, connections, options.duration_s)
                bench.results[(target.label, connections)].append(result)
                print(
                    f"round {number + 1}/{options.rounds} {target.label} c={connections}: "
                    f"{result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                    f"p99 {result.p99_ms:.2f} ms",
                    flush=True,
                )


def read_rss(bench: Bench, start_kib: int) -> str:
    """The one-key gateway's resident memory once it has served `rss_after` requests."""
    target = bench.target(GATEWAY)
    gateway = target.gateway
    assert gateway is not None
    wanted = bench.options.rss_after
    while gateway.served < wanted:
        # Top up with one more run, sized from this gateway's slowest rate so far.
        rates = [r.rps for r in bench.results[(GATEWAY, THROUGHPUT)]] or [1000.0]
        missing = wanted - gateway.served
        bench.drive(target, THROUGHPUT, max(1.0, 1.1 * missing / min(rates)))
    return (
        f"gateway RSS after {gateway.served:,} requests: {mib(gateway.rss_kib())} "
        f"(VmRSS; {mib(start_kib)} before the first run)"
    )


def profile(bench: Bench) -> list[str]:
    """py-spy on the one-key gateway during one more 32-connection run."""
    output = bench.options.profile
    if output is None:
        return []
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        bench.failures.append("--profile: py-spy is not installed (pip install py-spy)")
        return []
    target = bench.target(GATEWAY)
    assert target.gateway is not None
    duration = bench.options.duration_s
    spy = start_py_spy(binary, target.gateway.pid, output, duration, bench.cpus.load)
    result = bench.drive(target, THROUGHPUT, duration)
    _, errors = spy.communicate(timeout=duration + 60)
    if spy.returncode != 0:
        bench.failures.append(f"py-spy exited with {spy.returncode}: {errors.decode()[-500:]}")
        return []
    return [
        f"{output}: {result.rps:,.0f} req/s while sampled",
        *read_profile(output).top(),
    ]


def check_usage(bench: Bench, upstream: Nginx) -> tuple[bool, list[str]]:
    """Stop every gateway with SIGTERM, then hold its stored usage against two counts.

    The upstream's count of what each gateway forwarded must match exactly. wrk's
    count of 2xx answers may be lower by the requests still in flight when it
    stopped: the gateway forwarded and counted those, but wrk had closed the
    connection and never saw the answer. At most one a connection a run.
    """
    for gateway in bench.gateways:
        code = gateway.stop(bench.processes)
        if code != 0:
            bench.failures.append(f"{gateway.name}: exited with {code} on SIGTERM")
    received = upstream.requests_by_listener()

    exact, lines = True, []
    for gateway in bench.gateways:
        key_id = gateway.checked_key
        usage, denied = gateway.key_usage(key_id) if key_id else gateway.total_usage()
        whose = "the key's usageCount" if key_id else "usageCount summed over all keys"
        unseen = usage - gateway.sent_ok
        line = f"{gateway.name}: {whose} {usage:,}"
        if gateway.upstream_listener is not None:
            forwarded = received[gateway.upstream_listener]
            verdict = "exact" if usage == forwarded else f"off by {usage - forwarded:+,}"
            line += f"; the upstream received {forwarded:,} from it: {verdict}"
            exact = exact and usage == forwarded
        line += (
            f"; wrk and the setup saw {gateway.sent_ok:,} 2xx, {unseen:,} fewer, within the "
            f"{gateway.in_flight_bound:,} that {gateway.runs} wrk runs can leave in flight"
        )
        if not 0 <= unseen <= gateway.in_flight_bound:
            exact = False
            line += ": NOT EXPLAINED"
        if denied:
            exact = False
            line += f"; deniedCount {denied:,}"
        lines.append(line)
    if not exact:
        bench.failures.append("usage not exact: " + "; ".join(lines))
    return exact, lines


def summaries(bench: Bench) -> list[Summary]:
    """Rows in target order, throughput rows first, then latency rows."""
    rows = []
    for connections in BOTH:
        for target in bench.targets:
            runs = bench.results.get((target.label, connections))
            if runs:
                rows.append(Summary(target.label, connections, tuple(runs)))
    return rows


def key_ratios(rows: list[Summary]) -> list[str]:
    """Many keys against one, at 32 connections."""
    by_label = {s.label: s for s in rows if s.connections == THROUGHPUT}
    one = by_label.get(GATEWAY)
    if one is None:
        return []
    return [
        f"{label} vs 1 key stored: {summary.rps / one.rps:.2f}x the throughput "
        f"({summary.rps:,.0f} vs {one.rps:,.0f} req/s at {THROUGHPUT} connections)"
        for label, summary in by_label.items()
        if " keys stored" in label
    ]


def compose(
    bench: Bench, facts: dict[str, str], memory: str, usage: tuple[bool, list[str]]
) -> list[str]:
    """The Markdown for the README: the table, then one line for each other figure."""
    options, (exact, usage_lines) = bench.options, usage
    rows = summaries(bench)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python bench/run.py" + (" --quick" if options.quick else "")
    method = (
        f"{options.rounds} rounds of {options.duration_s:g} s for each target and connection "
        f"count, targets alternating, median of the rounds; {bench.cpus.describe()}; "
        "GET of one share; every gateway key has the get permission, a validity window "
        "and a two-block IP allowlist; gateway logs JSON at info to a file; usage flushed "
        "every second"
    )
    return [
        f"Measured {when} with `{command}`.",
        "",
        *table(rows, NGINX, DIRECT),
        "",
        *(f"- {line}" for line in key_ratios(rows)),
        f"- {memory}",
        f"- usage exact after SIGTERM: {'yes' if exact else 'no'}",
        *(f"  - {line}" for line in usage_lines),
        *(f"- {note}" for note in bench.notes),
        "- machine: " + ", ".join(f"{name} {value}" for name, value in facts.items()),
        f"- method: {method}",
    ]


def run(bench: Bench, facts: dict[str, str]) -> list[str]:
    """Start everything, measure, stop, and answer the report's lines."""
    upstream = start_servers(bench)
    add_gateway(bench, upstream)
    add_embedded(bench)
    add_many_keys(bench, upstream)
    if bench.options.workers > 1:
        add_workers(bench, upstream)

    preflight(bench)
    gateway = bench.target(GATEWAY).gateway
    assert gateway is not None
    start_kib = gateway.rss_kib()
    warm_every_key(bench)
    measure(bench)
    memory = read_rss(bench, start_kib)
    profiled = profile(bench)
    usage = check_usage(bench, upstream)
    lines = compose(bench, facts, memory, usage)
    return lines + (["", "```", *profiled, "```"] if profiled else [])


def main(argv: list[str] | None = None) -> int:
    options = Options.parse(argv)
    nginx_binary, wrk_binary = machine.ensure_tools()
    cpus = machine.plan_cpus(options.pin)
    facts = machine.describe(nginx_binary, wrk_binary)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Unwinds through the with blocks below, which stop every child process.
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="share-gateway-bench-") as temporary,
        Processes() as processes,
    ):
        bench = Bench(options, cpus, nginx_binary, wrk_binary, processes, Path(temporary))
        lines = run(bench, facts)
    lines.append(f"- the whole run took {time.monotonic() - started:.0f} s")

    text = "\n".join(lines)
    print("\n" + text)
    RESULTS.write_text(f"# Benchmark results\n\n{text}\n", encoding="utf-8")
    if bench.failures:
        print("\nFAILED:\n" + "\n".join(f"- {failure}" for failure in bench.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
