"""End to end: the default profile exactly as `make demo` runs it on a fresh machine, from an empty cache.

It writes the default profile's results to reports/mnist5k, the folder that `make demo` fills. It takes about
20 minutes on 2 cores, so `make bench` leaves it out and `make bench-e2e` runs it.
"""
from pathlib import Path

from bench_runs import measure, section

ROOT = Path(__file__).resolve().parent.parent


def run() -> str:
    "Return the markdown section of `steernb-run --profile mnist5k` from an empty cache."
    m = measure("mnist5k", out=ROOT / "reports" / "mnist5k")
    goal = "Goal: at most 20 minutes and under 4 GB of peak memory on a 2-core machine."
    return section([m], "end-to-end: make demo (mnist5k)") + "\n" + goal + "\n"
