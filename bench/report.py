"""Medians of the rounds, and the Markdown table they go into."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from wrk import WrkResult


@dataclass(frozen=True)
class Summary:
    """The median of one target's rounds at one number of connections."""

    label: str
    connections: int
    runs: tuple[WrkResult, ...]

    @property
    def rps(self) -> float:
        return statistics.median(run.rps for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)


HEADER = (
    "| target | connections | requests/s | p50 ms | p99 ms "
    "| throughput vs nginx | p50 added vs direct (ms) |"
)
RULE = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"


def table(summaries: list[Summary], nginx_label: str, direct_label: str) -> list[str]:
    """One row per target and connection count; ratios against the same connection count."""
    by_key = {(s.label, s.connections): s for s in summaries}
    lines = [HEADER, RULE]
    for summary in summaries:
        nginx = by_key.get((nginx_label, summary.connections))
        direct = by_key.get((direct_label, summary.connections))
        ratio = f"{summary.rps / nginx.rps:.2f}" if nginx else "-"
        added = f"{summary.p50_ms - direct.p50_ms:+.2f}" if direct else "-"
        if summary.label == direct_label:
            added = "-"
        lines.append(
            f"| {summary.label} | {summary.connections} | {summary.rps:,.0f} "
            f"| {summary.p50_ms:.2f} | {summary.p99_ms:.2f} | {ratio} | {added} |"
        )
    return lines


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def short_count(number: int) -> str:
    """100000 as 100k, for row labels."""
    if number >= 1000 and number % 1000 == 0:
        return f"{number // 1000}k"
    return f"{number:,}"
