"""The machine under test: its tools, how its CPUs are split, and how to describe it."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Debian puts nginx in /usr/sbin, which a non-root PATH often lacks.
_SBIN = "/usr/sbin:/sbin"


def find_tool(name: str) -> str | None:
    """The path of a command, looking in the sbin folders too."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def ensure_tools() -> tuple[str, str]:
    """The paths of nginx and wrk, installed from Debian's packages if missing."""
    nginx, wrk = find_tool("nginx"), find_tool("wrk")
    if nginx and wrk:
        return nginx, wrk

    print("installing nginx and wrk with apt-get ...", flush=True)
    # nginx-light is the smallest build that has what the benchmark needs; newer
    # Debian releases dropped it, where plain nginx is the fallback.
    attempts = (["nginx-light", "wrk"], ["nginx", "wrk"])
    for refreshed in (False, True):
        if refreshed:
            subprocess.run(["apt-get", "update"], check=False)
        for packages in attempts:
            done = subprocess.run(["apt-get", "install", "-y", *packages], check=False)
            nginx, wrk = find_tool("nginx"), find_tool("wrk")
            if done.returncode == 0 and nginx and wrk:
                return nginx, wrk
    raise RuntimeError("could not install nginx and wrk with apt-get")


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs run the servers under test and which run the load generator."""

    servers: frozenset[int]
    load: frozenset[int]

    @property
    def pinned(self) -> bool:
        return not self.servers & self.load

    def describe(self) -> str:
        if not self.pinned:
            return f"not pinned: wrk and the servers share CPUs {_cpus(self.servers)}"
        return (
            f"wrk -t1 pinned to CPU {_cpus(self.load)}; the server under test and the "
            f"fixed upstream pinned to CPU {_cpus(self.servers)}"
        )


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def plan_cpus(pin: bool) -> CpuPlan:
    """One CPU for wrk, the rest for the servers, when there are two or more.

    Unpinned, wrk and the server fight for the same cores and the scheduler
    decides who wins; pinned, each side has its own, and every target carries
    the same fixed upstream on its side.
    """
    available = frozenset(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return CpuPlan(available, available)
    load = max(available)
    return CpuPlan(available - {load}, frozenset({load}))


def _version(argv: list[str], pattern: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe(nginx: str, wrk: str) -> dict[str, str]:
    """The facts a reader needs to compare these figures with theirs."""
    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu_model(),
        "kernel": platform.release(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "nginx": _version([nginx, "-v"], r"nginx/(\S+)"),
        "wrk": _version([wrk, "-v"], r"wrk (\S+)"),
    }
