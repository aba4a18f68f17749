"""Run every benchmark in bench/ and rewrite reports/bench.md.

Each `bench/bench_<name>.py` exposes `run() -> str`, a markdown section with its own figures.
`python bench/run_all.py transforms data` runs only the named ones and keeps the other sections.
"""
import datetime
import importlib
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench.md"
ORDER = ["transforms", "data", "generators", "gan", "steer", "generate", "train", "runs", "end_to_end"]
# Run only when named, because they take long: `make bench-e2e` runs end_to_end (about 20 minutes).
ON_REQUEST = {"end_to_end"}


def machine() -> str:
    "Describe the CPU, memory and software versions of this machine."
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"): cpu = line.split(":", 1)[1].strip(); break
    except OSError: pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB memory, no GPU used; "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads")


def sections_of(text: str) -> dict[str, str]:
    "Split an earlier report into its `<!-- bench:NAME -->` sections."
    parts = re.split(r"<!-- bench:(\w+) -->\n", text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def main(names: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("STEERNB_PROGRESS", "0")
    available = [n for n in ORDER if (ROOT / "bench" / f"bench_{n}.py").exists()]
    available += sorted(p.stem[6:] for p in (ROOT / "bench").glob("bench_*.py") if p.stem[6:] not in available)
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"Unknown benchmark(s) {unknown}; available: {available}", file=sys.stderr)
        return 2
    old = sections_of(REPORT.read_text()) if REPORT.exists() else {}
    failed = 0
    for name in names or [n for n in available if n not in ON_REQUEST]:
        start = time.time()
        print(f"bench {name} ...", flush=True)
        try:
            body = importlib.import_module(f"bench_{name}").run().strip()
        except Exception:
            failed += 1
            body = f"## {name}\n\nFailed:\n\n```\n{traceback.format_exc()}```"
        stamp = datetime.date.today().isoformat()
        old[name] = f"{body}\n\n_Measured on {stamp} in {time.time() - start:.0f} s by `make bench`._"
        print(f"bench {name} done in {time.time() - start:.0f} s", flush=True)
    head = ("# Benchmarks\n\nWritten by `make bench` (`python bench/run_all.py`); do not edit by hand.\n\n"
            f"Machine: {machine()}.\n")
    order = [n for n in available if n in old] + [n for n in old if n not in available]
    text = head + "".join(f"\n<!-- bench:{n} -->\n{old[n]}\n" for n in order)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(f"wrote {REPORT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
