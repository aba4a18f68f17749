"""Benchmark BigGAN-deep-256 on the CPU with the full last convolution and with only its 3 RGB channels.

The model is `random_biggan(256)`: the published BigGAN-deep-256 architecture with random weights, so
the timings need no weights files. Both variants run on the same latents and classes; their outputs
are compared, then timed in alternation. Run it alone with `python bench/bench_generators.py`.
"""
import copy
import os
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from steernb.generators import random_biggan

RESOLUTION, BATCH = 256, 4
REPEATS = 3  # timed forward passes per variant, after one warm-up pass each


def _seconds(G, z, y) -> tuple[float, float]:
    "Return the wall-clock and the process CPU time of one forward pass without autograd, in seconds."
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad(): G(z, y)
    return time.perf_counter() - wall, time.process_time() - cpu


def _gflop_per_image(model, trim: bool) -> float:
    "Count the GFLOP of one image with torch's FLOP counter, on a meta-device copy that computes nothing."
    meta = copy.deepcopy(model).to("meta")
    meta.generator.conv_to_rgb.keep_channels = 3 if trim else None
    z, one_hot = torch.zeros(1, model.config.z_dim, device="meta"), torch.zeros(1, model.config.num_classes, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad(): meta(z, one_hot, 1.0)
    return counter.get_total_flops() / 1e9


def _cpu_name() -> str:
    "Return the CPU model from /proc/cpuinfo, or the machine type where that file is missing."
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def run() -> str:
    "Time BigGAN-deep-256 forward passes at batch BATCH, full versus trimmed last convolution; return markdown."
    start = time.perf_counter()
    G = random_biggan(RESOLUTION, seed=0)
    build = time.perf_counter() - start
    z, y = G.sample_z(BATCH, seed=0), torch.tensor([0, 151, 300, 999])[:BATCH]

    with torch.no_grad():
        G.trim_rgb = False
        full = G(z, y)
        G.trim_rgb = True
        trimmed = G(z, y)
    max_diff = (full - trimmed).abs().max().item()
    flops = {trim: _gflop_per_image(G.model, trim) for trim in (False, True)}

    times, cpu_times = {False: [], True: []}, {False: [], True: []}
    for _ in range(REPEATS):
        for trim in (False, True):
            G.trim_rgb = trim
            wall, cpu = _seconds(G, z, y)
            times[trim].append(wall)
            cpu_times[trim].append(cpu)
    before, after = statistics.median(times[False]), statistics.median(times[True])

    names = {False: "full: 128 channels, keep 3", True: "trimmed: 3 channels"}
    rows = [f"| {names[trim]} | {flops[trim]:.1f} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} "
            f"| {statistics.median(cpu_times[trim]):.2f} | {BATCH / statistics.median(t):.3f} |" for trim, t in times.items()]
    return "\n".join([
        "## generators",
        "",
        f"BigGAN-deep-{RESOLUTION} architecture with random weights (`random_biggan({RESOLUTION})`, built in {build:.1f} s), "
        f"batch {BATCH}, float32 on the CPU ({_cpu_name()}, {os.cpu_count()} cores) with {torch.get_num_threads()} torch thread(s) "
        f"(`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`), torch {torch.__version__}. "
        f"Wall-clock seconds per forward pass over {REPEATS} passes per variant, the two variants alternating after one warm-up pass each; "
        "CPU s is the process CPU time of a pass, summed over threads, which other load on the machine disturbs less.",
        "",
        "| last convolution | GFLOP per image | median s | min s | max s | median CPU s | images/s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Speed-up of the trimmed last convolution: {before / after:.3f}x in wall-clock time (median {before:.2f} s -> {after:.2f} s per batch), "
        f"{statistics.median(cpu_times[False]) / statistics.median(cpu_times[True]):.3f}x in CPU time; "
        f"the FLOP count alone would allow {flops[False] / flops[True]:.3f}x. GFLOP come from `torch.utils.flop_counter` (2 FLOP per multiply-add). "
        f"Largest absolute difference between the two outputs: {max_diff:.2e}.",
        "",
        "Command: `python bench/run_all.py generators` (or `python bench/bench_generators.py`).",
    ])


if __name__ == "__main__":
    print(run())
