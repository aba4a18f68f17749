"""Benchmark of the embedded GAN: generator images/s, and the training speed of the mnist5k preset.

The generator has the mnist5k preset's architecture with freshly initialised weights (speed does not
depend on the weights). Training speed is the mean time of 30 training steps after 5 warm-up steps,
projected to the preset's step count. Run: `OMP_NUM_THREADS=2 .venv/bin/python bench/bench_gan.py`.
"""
import os
import time

import torch

BATCH = 64
REPEATS = 20
WARMUP_STEPS, TIMED_STEPS = 5, 30


def _generator(channels_last: bool = False, amp: bool = False):
    from steernb.gan import ConditionalGenerator, EmbeddedGenerator, gan_config, standing_statistics
    config = gan_config("mnist5k")
    net = ConditionalGenerator(config["z_dim"], config["g_channels"], config["num_classes"])
    standing_statistics(net, config["z_dim"], config["num_classes"], 2, 100, seed=0)
    return EmbeddedGenerator(net, config | {"data_sha256": "benchmark"}, amp=amp, channels_last=channels_last)


def _images_per_second(G) -> float:
    "Return generated images/s at batch BATCH, timed over REPEATS batches after one warm-up batch."
    z, y = G.sample_z(BATCH, seed=0), torch.arange(BATCH) % G.num_classes
    with torch.no_grad():
        G(z, y)
        start = time.perf_counter()
        for _ in range(REPEATS): G(z, y)
    return BATCH * REPEATS / (time.perf_counter() - start)


def _seconds_per_step() -> tuple[float, dict]:
    "Return the mean seconds of one mnist5k training step and the preset's configuration."
    from steernb.data import load_mnist5k, to_unit
    from steernb.gan import _new_state, _train_step, gan_config
    config = gan_config("mnist5k")
    real = load_mnist5k("train")
    x, y = to_unit(real.images), real.labels
    nets, opts, rng = _new_state(config)
    for net in nets.values(): net.train()

    def step(i):
        idx = torch.randint(0, len(x), (config["batch_size"],), generator=rng)
        _train_step(nets, opts, x[idx], y[idx], config, i, rng)

    for i in range(WARMUP_STEPS): step(i)
    start = time.perf_counter()
    for i in range(TIMED_STEPS): step(WARMUP_STEPS + i)
    return (time.perf_counter() - start) / TIMED_STEPS, config


def run() -> str:
    "Measure and return a markdown section."
    rows = [("float32", _images_per_second(_generator())),
            ("float32, channels_last", _images_per_second(_generator(channels_last=True)))]
    if torch.cuda.is_available():
        rows.append(("bf16 autocast, channels_last, CUDA", _images_per_second(_generator(True, True).cuda())))
    per_step, config = _seconds_per_step()
    load = os.getloadavg()[0]
    lines = ["## Embedded GAN", "",
             f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} .venv/bin/python bench/bench_gan.py`; "
             f"load average at the end: {load:.1f}.", "",
             f"Generator of the mnist5k preset (z_dim {config['z_dim']}, width {config['g_channels']}), batch {BATCH}:", "",
             "| setting | images/s |", "|---|---|"]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in rows]
    lines += ["", f"Training, mnist5k preset (batch {config['batch_size']}): {per_step * 1000:.0f} ms per step over "
              f"{TIMED_STEPS} steps, so {config['steps']} steps take about {per_step * config['steps'] / 60:.1f} min "
              "(an estimate: checkpoints and the standing statistics add a few seconds)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
