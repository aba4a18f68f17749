"""Benchmark of steernb.generate: images per second written to disk, against a loop that makes and saves one image at a time.

`generate_dataset` draws each image's latent and alphas, steers and generates in batches, and encodes and
writes PNGs in a few threads while the next batch is generated. The baseline draws the same latents and alphas, then calls
the walks and the generator on one image and writes its PNG before starting the next. Two generators: the
embedded GAN of the mnist5k profile (32 x 32 pixels) and BigGAN-deep-256, both with random weights, since the
speed depends only on the architecture. Run: `OMP_NUM_THREADS=2 .venv/bin/python bench/bench_generate.py`.
"""
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

# (name, images made by generate_dataset, images made one at a time, batch size)
CASES = (("embedded GAN (mnist5k architecture), 32 px", 1000, 200, 64),
         ("BigGAN-deep-256, 256 px", 8, 4, 4))


def _embedded_gan():
    "Return the mnist5k embedded GAN architecture with untrained weights."
    from steernb.gan import ConditionalGenerator, EmbeddedGenerator, gan_config
    config = gan_config("mnist5k")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ConditionalGenerator(config["z_dim"], config["g_channels"], config["num_classes"])
    return EmbeddedGenerator(net, config)


def _generators():
    from steernb.generators import random_biggan
    yield _embedded_gan()
    yield random_biggan(resolution=256)


def _plan(G, walks, n_per_class):
    from steernb.generate import GenerationPlan
    return GenerationPlan(list(range(G.num_classes)), [str(c) for c in range(G.num_classes)], list(walks.transforms),
                          n_per_class, G.z_dim, G.resolution, G.generator_id)


@torch.no_grad()
def _one_at_a_time(G, walks, out_dir: Path, n: int) -> float:
    "Make and save images 0..n-1 one by one; return images/s."
    from steernb.data import to_uint8
    from steernb.generate import save_png
    plan = _plan(G, walks, n_per_class=n)
    start = time.perf_counter()
    for i in range(n):
        z, alphas, record = plan.image(i)
        y = torch.tensor([plan.classes[record["label"]]])
        x = G(walks.shift(z[None], y, {k: v[None] for k, v in alphas.items()}), y)
        save_png(to_uint8(x[0].clamp(-1, 1)), out_dir / record["file"])
    return n / (time.perf_counter() - start)


def _batched(G, walks, out_dir: Path, n: int, batch_size: int) -> float:
    "Run generate_dataset for n images (rounded up to whole classes) into a new folder; return images/s."
    from steernb.generate import generate_dataset
    n_per_class = -(-n // G.num_classes)
    start = time.perf_counter()
    generate_dataset(G, walks, out_dir, n_per_class, classes=list(range(G.num_classes))[:-(-n // n_per_class)],
                     batch_size=batch_size)
    written = len(list(out_dir.rglob("*.png")))
    return written / (time.perf_counter() - start)


def run() -> str:
    "Time batched generation and the one-image loop for each generator; return a markdown section."
    from steernb.steer import init_walks
    from steernb.transforms import TRANSFORM_NAMES
    from steernb.generate import PNG_WRITERS, cpu_block_rows
    work = Path(tempfile.mkdtemp(prefix="steernb-bench-generate-"))
    rows = []
    try:
        for (name, n_batched, n_single, batch_size), G in zip(CASES, _generators()):
            walks = init_walks(G, TRANSFORM_NAMES)
            _one_at_a_time(G, walks, work / f"warm-{G.resolution}", 1)  # first calls allocate and pick kernels
            single = _one_at_a_time(G, walks, work / f"single-{G.resolution}", n_single)
            batched = _batched(G, walks, work / f"batched-{G.resolution}", n_batched, batch_size)
            rows.append(f"| {name} | {batch_size} | {cpu_block_rows(G)} | {batched:,.2f} ({n_batched} images) | {single:,.2f} ({n_single} images) "
                        f"| {batched / single:.1f}x |")
            del G, walks
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return "\n".join([
        "## Generating data sets (steernb.generate)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), device: CPU.",
        "",
        "Command: `OMP_NUM_THREADS=2 .venv/bin/python bench/bench_generate.py` (or `make bench`).",
        "",
        "Images per second written to disk as PNG files, each image steered by all five walks (random linear "
        "directions) with its own alphas. Batched: `generate_dataset` into a new folder, timed from the call to its "
        f"return (argument checks, `args.json` and `manifest.csv` included); on the CPU the generator runs on blocks of "
        "a fixed number of rows (block rows) so that pixels do not depend on the batch size, and "
        f"{PNG_WRITERS} threads encode and write the PNGs. One at a time: the same latents and "
        "alphas, one `walks.shift` + generator call and one PNG write per image, after one untimed warm-up image. "
        "Both generators have random weights (the speed depends only on the architecture).",
        "",
        "| generator | batch size | block rows | batched images/s | one-at-a-time images/s | ratio |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ])


if __name__ == "__main__":
    print(run())
