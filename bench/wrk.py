"""One wrk run against one target, read back from the JSON line its Lua script prints."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from processes import child_setup

LUA = Path(__file__).resolve().parent / "lua"
REPORT_LUA = LUA / "report.lua"
MANY_KEYS_LUA = LUA / "many_keys.lua"
_MARKER = "BENCH-RESULT "

# A request unanswered this long is counted as a timeout error, which fails the run.
TIMEOUT_S = 2


@dataclass(frozen=True)
class WrkResult:
    """What wrk counted in one run."""

    requests: int
    duration_s: float
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    @property
    def ok(self) -> int:
        """Requests answered with a 2xx."""
        return self.requests - self.non_2xx

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


def parse(output: str) -> WrkResult:
    """The result from wrk's output; the Lua done() hook prints it after a marker."""
    for line in output.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line.removeprefix(_MARKER))
            errors, latency = data["errors"], data["latency_us"]
            return WrkResult(
                requests=data["requests"],
                duration_s=data["duration_us"] / 1e6,
                connect_errors=errors["connect"],
                read_errors=errors["read"],
                write_errors=errors["write"],
                timeouts=errors["timeout"],
                non_2xx=data["non_2xx"],
                p50_ms=latency["p50"] / 1000,
                p99_ms=latency["p99"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result line:\n{output}")


def run_wrk(
    binary: str,
    url: str,
    *,
    connections: int,
    duration_s: float,
    cpus: frozenset[int],
    authorization: str = "",
    keys_file: Path | None = None,
) -> WrkResult:
    """Drive `url` with one wrk thread at a fixed number of connections.

    One thread: wrk gets one CPU of its own, and a second thread there would
    only take turns with the first.
    """
    script = MANY_KEYS_LUA if keys_file is not None else REPORT_LUA
    env = {
        **os.environ,
        "BENCH_AUTHORIZATION": authorization,
        "BENCH_REPORT_LUA": str(REPORT_LUA),
        "BENCH_KEYS_FILE": str(keys_file or ""),
    }
    argv = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={TIMEOUT_S}s",
        "-s",
        str(script),
        url,
    ]
    # subprocess.run kills wrk if the benchmark is interrupted while it waits.
    done = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=False,
        start_new_session=True,
        preexec_fn=child_setup(cpus),
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return parse(done.stdout)
