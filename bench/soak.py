"""The full soak: 200 clients mixing every share operation through a gateway for 60 s.

Run from the repository root with the project's Python:

    .venv/bin/python bench/soak.py                       # 200 clients, 60 s
    .venv/bin/python bench/soak.py --clients 50 --duration 20

It starts `share-gateway serve` on the embedded reference backend in a temporary
folder, runs the load (GET, LIST, CREATE, UPDATE, DELETE in a fixed mix), and prints
a report. It exits non-zero when the gateway answered a 5xx of its own or a request
failed on the socket, when usage was not exact (admin API and store), or when
resident memory or open descriptors grew after the warm-up beyond the tolerances
stated in tests/soak.py. tests/test_soak.py runs a short one of the same in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

# The soak itself lives with the tests, which run a short one of it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.soak import soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds after warm-up")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of warm-up")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="share-gateway-soak-") as folder:
        report = asyncio.run(soak(Path(folder), args.clients, args.duration, args.warmup))
    print("\n".join(report.lines()))
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
