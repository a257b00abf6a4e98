"""A short soak in CI: 60 clients for 10 s of mixed operations through a gateway process.

The full one is `python bench/soak.py` (200 clients, 60 s); the checks are the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak import soak

CLIENTS = 60
DURATION_S = 10.0
WARMUP_S = 3.0


@pytest.mark.timeout(120)
async def test_soak_short(tmp_path: Path) -> None:
    """No gateway-made 5xx, exact usage, and no growth of memory or descriptors."""
    report = await soak(tmp_path / "soak", CLIENTS, DURATION_S, WARMUP_S)

    print("\n".join(report.lines()))
    assert report.problems() == [], "\n".join(report.lines())
    # Every client took part: the load was the one described, not a trickle.
    assert report.measured_requests >= CLIENTS * 10
    assert set(report.operations) == {"CREATE", "GET", "LIST", "UPDATE", "PATCH", "DELETE"}
