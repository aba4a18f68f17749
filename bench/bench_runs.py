"""End-to-end benchmark: `steernb-run` on a profile from an empty cache, with wall time, CPU time and peak memory.

`run()` measures the smoke profile (a few minutes at most). `python bench/bench_runs.py mnist5k` measures the default
profile the way `make demo` runs it (about 20 minutes on 2 cores), into a temporary folder.
"""
import os, platform, subprocess, sys, tempfile, time
from pathlib import Path


def measure(profile: str = "smoke", *extra: str, out: str | Path | None = None) -> dict:
    "Run `steernb-run --profile PROFILE` with a fresh cache (and a temporary output folder unless `out` is given)."
    exe = Path(sys.executable).with_name("steernb-run")
    with tempfile.TemporaryDirectory(prefix="steernb-bench-") as tmp:
        env = {**os.environ, "STEERNB_CACHE": f"{tmp}/cache", "STEERNB_PROGRESS": "0", "MPLBACKEND": "Agg"}
        out_dir = Path(out) if out is not None else Path(tmp) / "out"
        cmd = [str(exe), "--profile", profile, "--out", str(out_dir), *extra]
        start = time.perf_counter()
        with open(Path(tmp) / "stdout.txt", "w") as log:
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
            # the usage of this one child, including every kernel it started and waited for
            _, wait_status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(wait_status)
        wall = time.perf_counter() - start
        printed = (Path(tmp) / "stdout.txt").read_text()
        table = (out_dir / "accuracy.md").read_text() if (out_dir / "accuracy.md").exists() else ""
    shown = ["steernb-run", "--profile", profile, *(["--out", str(out)] if out is not None else []), *extra]
    return {"command": " ".join(shown), "status": child.returncode, "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024, "steps": printed.strip().splitlines(),
            "table": table}


def section(measurements: list[dict], title: str = "end-to-end: smoke profile", note: str = "") -> str:
    "Format measurements of one profile as a markdown section, with the step lines of the first."
    lines = [f"## {title}", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
             "Each command starts with an empty `STEERNB_CACHE` (the GAN, walks, data sets and checkpoints are all made).", "",
             "| command | exit status | wall time | CPU time (all processes) | peak memory of one process |", "|---|---|---|---|---|",
             *[f"| `{m['command']}` | {m['status']} | {m['wall_s']:.0f} s | {m['cpu_s']:.0f} s | {m['peak_rss_mb']:.0f} MB |" for m in measurements],
             "", *([note, ""] if note else []),
             f"Step lines printed by `{measurements[0]['command']}`, in the order the steps finished:", "", "```", *measurements[0]["steps"], "```"]
    return "\n".join(lines) + "\n"


def run() -> str:
    "Return the markdown section of the smoke profile end to end, with two steps at a time (as the tests run it) and one."
    note = ("Goal: under 2 minutes inside the tests, which run the first command (`tests/test_runs.py`). With `--jobs 2` two "
            "steps run at once, each kernel with one CPU thread; most of a smoke step is kernel start-up and imports, which "
            "then overlap.")
    return section([measure("smoke", "--jobs", "2"), measure("smoke")], note=note)


if __name__ == "__main__":
    print(section([measure(*(sys.argv[1:] or ["smoke"]))]))
