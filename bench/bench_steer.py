"""Benchmark one steer-learning step on the CPU: steernb's step against a naive step like the published code.

In steernb's step (`steernb.steer.walk_losses`, then backward and Adam), one target pass of the
frozen generator without autograd serves every transform. Targets are built for the whole batch at
once on the generator's device, and the walk passes of all transforms run as one batch. The
generator's parameters get no gradients. BigGAN computes only the 3 RGB channels of its last
convolution, stores its convolution weights channels-last, folds each conditional batch norm into
one multiply-add, and keeps gradients channels-last through the residual shortcuts.

The naive step does what the published steerability code does, for each transform in turn. It runs
a target pass of the full float32 generator (for BigGAN, the package's own modules, unchanged) with
autograd on: the parameters require gradients, so
the pass records a graph. It builds the target on the CPU one image at a time. Its walk pass ends
in a backward that also computes gradients for every generator parameter.

Both steps train the same linear walks on the same batches. A steering sample is one (z, transform)
pair. Run it alone with `python bench/bench_steer.py`.
"""
import copy
import os
import platform
import statistics
import time

import torch
from pytorch_pretrained_biggan.model import BigGANBatchNorm, GenBlock

from steernb.gan import ConditionalGenerator, EmbeddedGenerator, gan_config
from steernb.generators import BigGANGenerator, LayoutGenBlock, RGBConv2d, TruncationBatchNorm, random_biggan
from steernb.steer import (STREAM_TRAIN, init_walks, masked_mse, sample_alpha, stream_generator, walk_coef,
                           walk_losses)
from steernb.transforms import TRANSFORM_NAMES, get_transform

# (label, batch size, transforms, timed steps per variant). A BigGAN-deep-256 step with all five
# transforms takes 30 to 80 s on a 2-core CPU, so it gets two timed steps.
CASES = [
    ("embedded GAN (mnist5k architecture)", 2, TRANSFORM_NAMES, 20),
    ("embedded GAN (mnist5k architecture)", 32, TRANSFORM_NAMES, 5),
    ("BigGAN-deep-256 (random weights)", 2, TRANSFORM_NAMES, 2),
]


def embedded_generator() -> EmbeddedGenerator:
    "Build the mnist5k embedded GAN architecture with random weights (speed does not depend on training)."
    config = gan_config("mnist5k")
    torch.manual_seed(0)
    return EmbeddedGenerator(ConditionalGenerator(config["z_dim"], config["g_channels"], config["num_classes"]), config)


def batches(G, transforms, batch_size, count):
    "Draw `count` seeded batches (z, y, alphas) as `learn_walks` does."
    out = []
    for step in range(count):
        g = stream_generator(0, STREAM_TRAIN, step)
        z = G.sample_z(batch_size, seed=int(torch.randint(2**31 - 1, (1,), generator=g)))
        y = torch.randint(G.num_classes, (batch_size,), generator=g)
        out.append((z, y, {name: sample_alpha(name, batch_size, g, G.resolution) for name in transforms}))
    return out


def steernb_step(G, walks, opt, z, y, alphas) -> None:
    "One step of steernb's learning loop."
    loss = sum(walk_losses(G, walks, z, y, alphas).values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def naive_step(G_full, walks, opt, z, y, alphas) -> None:
    "One step per transform as the published code takes it: autograd target pass, per-image CPU targets."
    for name, alpha in alphas.items():
        t = get_transform(name)
        x = G_full(z, y)  # parameters require gradients, so this pass records a graph
        x_cpu = x.detach().cpu()
        pairs = [t.apply(x_cpu[i:i + 1], alpha[i:i + 1]) for i in range(len(z))]
        target, mask = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        out = G_full(z + walk_coef(name, alpha, G_full.resolution) @ walks.w[name], y)
        loss = masked_mse(out, target, mask)
        opt.zero_grad(set_to_none=True)
        G_full.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def step_seconds(step, G, walks, opt, batch) -> float:
    "Return the wall-clock seconds of one `step` on `batch`."
    start = time.perf_counter()
    step(G, walks, opt, *batch)
    return time.perf_counter() - start


def full_copy(G):
    "Return a copy of `G` with trainable parameters and, for BigGAN, the package's own modules in the default layout."
    G_full = copy.deepcopy(G)
    for p in G_full.parameters(): p.requires_grad_(True)
    if isinstance(G_full, BigGANGenerator):
        G_full.trim_rgb = False
        package_class = {TruncationBatchNorm: BigGANBatchNorm, LayoutGenBlock: GenBlock, RGBConv2d: torch.nn.Conv2d}
        for module in G_full.model.modules():  # BigGANBatchNorm has the same statistics at truncation 1
            module.__class__ = package_class.get(type(module), type(module))
        G_full.model.to(memory_format=torch.contiguous_format)
    return G_full


def measure(G, batch_size, transforms, steps, warmup) -> dict:
    "Time both steps on the same batches, alternating them; return the median seconds per step and the samples per step."
    variants = {"steernb": (steernb_step, G), "naive": (naive_step, full_copy(G))}
    walks = {label: init_walks(G, transforms) for label in variants}
    opts = {label: torch.optim.Adam(walks[label].parameters(), lr=1e-3) for label in variants}
    seconds = {label: [] for label in variants}
    for _, model in variants.values():  # one untimed forward pass each, so first-call set-up is not timed
        with torch.no_grad(): model(G.sample_z(batch_size), torch.zeros(batch_size, dtype=torch.long))
    for batch in batches(G, transforms, batch_size, warmup + steps):
        for label, (step, model) in variants.items():
            seconds[label].append(step_seconds(step, model, walks[label], opts[label], batch))
    result = {label: statistics.median(times[warmup:]) for label, times in seconds.items()}
    result["samples"] = batch_size * len(transforms)
    return result


def run() -> str:
    "Time steernb's steering step against the naive one on the CPU; return a markdown section."
    start = time.perf_counter()
    rows = []
    for label, batch_size, transforms, steps in CASES:
        if label.startswith("BigGAN"):
            G = random_biggan(256, seed=0)
            r = measure(G, batch_size, transforms, steps, warmup=0)
        else:
            r = measure(embedded_generator(), batch_size, transforms, steps, warmup=2)
        rows.append(f"| {label} | {batch_size} | {', '.join(transforms)} | {steps} | {r['naive']:.3f} | {r['steernb']:.3f} "
                    f"| {r['samples'] / r['naive']:.2f} | {r['samples'] / r['steernb']:.2f} | {r['naive'] / r['steernb']:.2f}x |")
    total = time.perf_counter() - start
    return "\n".join([
        "## steer",
        "",
        "One steer-learning step (linear walks, Adam) on the CPU, float32, "
        f"{torch.get_num_threads()} torch threads (`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`), "
        f"{platform.processor() or platform.machine()}. The naive step runs each transform in turn with an autograd "
        "target pass of the full generator (parameters trainable; for BigGAN the package's unchanged modules), targets built on the "
        "CPU one image at a time, and a backward pass that also computes parameter gradients. steernb's step shares one "
        "target pass without autograd among all transforms, builds targets for the whole batch, runs all walk passes as "
        "one batch through the frozen generator and, for BigGAN, computes only the RGB channels of the last convolution, "
        "keeps convolution weights and gradients channels-last and folds each conditional batch norm into one multiply-add. "
        "Both train the same walks on the same batches; a steering sample is one (z, transform) pair. "
        "The two steps alternate on each batch, so a change in machine load hits both. The embedded GAN rows are "
        "medians over the timed steps after 2 warm-up steps; the BigGAN row is the median of its timed steps after one "
        "warm-up forward pass.",
        "",
        "| generator | batch | transforms | timed steps | naive s/step | steernb s/step | naive samples/s | steernb samples/s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Total benchmark time {total:.0f} s. Goal: a speed-up of at least 2x.",
        "",
        "Command: `python bench/run_all.py steer` (or `python bench/bench_steer.py`).",
    ])


if __name__ == "__main__":
    print(run())
