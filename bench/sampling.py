"""A py-spy profile of the gateway during a run, summarised by function."""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from processes import child_setup


@dataclass(frozen=True)
class Profile:
    """Sample counts from py-spy's raw (collapsed stack) output."""

    samples: int
    own: Counter[str]
    inclusive: Counter[str]

    def top(self, count: int = 12) -> list[str]:
        """Lines for the functions that hold the most samples, on their own and with callees."""
        lines = [f"py-spy: {self.samples} samples of the busy gateway process"]
        for title, counter in (("own time", self.own), ("with callees", self.inclusive)):
            lines.append(f"top functions by {title}:")
            for frame, hits in counter.most_common(count):
                lines.append(f"  {100 * hits / max(1, self.samples):5.1f}%  {frame}")
        return lines


def read_profile(path: Path) -> Profile:
    """Parse `frame;frame;...;frame COUNT` lines, innermost frame last."""
    samples = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        # A recursive function counts once a sample, not once a frame.
        for frame in set(frames):
            inclusive[frame] += count
    return Profile(samples, own, inclusive)


def start_py_spy(
    binary: str, pid: int, output: Path, duration_s: float, cpus: frozenset[int]
) -> subprocess.Popen[bytes]:
    """py-spy sampling the gateway for `duration_s`; it writes `output` when done.

    --nonblocking: py-spy reads the stacks without pausing the process, so that
    the profile costs the gateway little of the throughput it measures.
    """
    argv = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(duration_s))),
        "--rate",
        "200",
        "--format",
        "raw",
        "--nolineno",
        "--nonblocking",
        "--output",
        str(output),
    ]
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=child_setup(cpus),
    )
