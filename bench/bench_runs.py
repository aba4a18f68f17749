"""End-to-end benchmark: `steernb-run` on a profile from an empty cache, with wall time, CPU time and peak memory.

`run()` measures the smoke profile (a few minutes at most). `python bench/bench_runs.py mnist5k` measures the default
profile the way `make demo` runs it (about 20 minutes on 2 cores), into a temporary folder.
"""
import os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path


def measure(profile: str = "smoke", *extra: str, out: str | Path | None = None) -> dict:
    "Run `steernb-run --profile PROFILE` with a fresh cache (and a temporary output folder unless `out` is given)."
    exe = Path(sys.executable).with_name("steernb-run")
    with tempfile.TemporaryDirectory(prefix="steernb-bench-") as tmp:
        env = {**os.environ, "STEERNB_CACHE": f"{tmp}/cache", "STEERNB_PROGRESS": "0", "MPLBACKEND": "Agg"}
        out_dir = Path(out) if out is not None else Path(tmp) / "out"
        cmd = [str(exe), "--profile", profile, "--out", str(out_dir), *extra]
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # covers the runner and every kernel it started and waited for
        table = (out_dir / "accuracy.md").read_text() if (out_dir / "accuracy.md").exists() else ""
    shown = ["steernb-run", "--profile", profile, *(["--out", str(out)] if out is not None else []), *extra]
    return {"command": " ".join(shown), "status": result.returncode, "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024, "steps": result.stdout.strip().splitlines(),
            "table": table}


def section(m: dict, title: str = "end-to-end: smoke profile") -> str:
    "Format one measurement as a markdown section."
    lines = [f"## {title}", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
             f"Command: `{m['command']}` with an empty `STEERNB_CACHE` (the GAN, walks, data sets and checkpoints are all made).", "",
             "| exit status | wall time | CPU time (all processes) | peak memory of one process |", "|---|---|---|---|",
             f"| {m['status']} | {m['wall_s']:.0f} s | {m['cpu_s']:.0f} s | {m['peak_rss_mb']:.0f} MB |", "",
             "Step lines printed by the runner:", "", "```", *m["steps"], "```"]
    return "\n".join(lines) + "\n"


def run() -> str:
    "Return the markdown section of the smoke profile end to end."
    return section(measure("smoke"))


if __name__ == "__main__":
    print(section(measure(*(sys.argv[1:] or ["smoke"]))))
