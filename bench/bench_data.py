"""Benchmark of the steernb.data input pipeline against torchvision's ImageFolder + PIL + DataLoader.

Both pipelines read the same synthetic JPEG tree (ImageNet-like 500 x 375 photographs) and deliver
shuffled float batches in [-1, 1] with a random crop and a horizontal flip. steernb decodes the tree once
into a uint8 cache and crops whole batches; torchvision decodes every image in every epoch in 2 worker
processes. Run: `OMP_NUM_THREADS=1 .venv/bin/python bench/bench_data.py`.
"""
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

N_CLASSES, PER_CLASS = 8, 50  # 400 JPEG files
PHOTO_SIZE = (500, 375)  # a frequent ImageNet training image size (width, height)
BATCH = 128
SETTINGS = ((128, 112, 0), (32, 32, 4))  # (cache side, crop side, padding) in pixels
OUR_EPOCHS, TV_EPOCHS = 5, 2  # torchvision: the first epoch starts the workers and is not timed


def _write_jpeg_tree(root: Path) -> Path:
    "Write N_CLASSES folders of PER_CLASS smooth-plus-noise JPEG photographs (quality 90)."
    rng = np.random.default_rng(0)
    w, h = PHOTO_SIZE
    for c in range(N_CLASSES):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            smooth = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
            noisy = np.asarray(smooth).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / f"{c}_{i}.JPEG", quality=90)
    return root


def _steernb_rate(root: Path, size: int, crop: int, padding: int) -> tuple[float, float]:
    "Return (images/s over OUR_EPOCHS epochs from the cache, seconds to build the cache)."
    from steernb.data import cache_images, iterate_batches
    from torchvision.datasets import ImageFolder
    files = ImageFolder(root)  # the same (path, label) listing as the torchvision pipeline
    start = time.perf_counter()
    ds = cache_images(files, size)
    build = time.perf_counter() - start
    g = torch.Generator().manual_seed(0)
    start, seen = time.perf_counter(), 0
    for _ in range(OUR_EPOCHS):
        for x, y in iterate_batches(ds, BATCH, generator=g, crop=crop, padding=padding):
            seen += len(y)
    return seen / (time.perf_counter() - start), build


def _torchvision_rate(root: Path, size: int, crop: int, padding: int) -> float:
    "Return images/s of ImageFolder + PIL + DataLoader(num_workers=2), timed after the first epoch."
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.RandomCrop(crop, padding=padding), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    loader = torch.utils.data.DataLoader(ImageFolder(root, tf), batch_size=BATCH, shuffle=True, num_workers=2,
                                         persistent_workers=True)
    for _ in loader: pass
    start, seen = time.perf_counter(), 0
    for _ in range(TV_EPOCHS - 1):
        for x, y in loader: seen += len(y)
    return seen / (time.perf_counter() - start)


def run() -> str:
    "Time both pipelines at 128 px (112 px crops) and 32 px (32 px crops of 4 px padding); return a markdown section."
    import torchvision
    work = Path(tempfile.mkdtemp(prefix="steernb-bench-data-"))
    old_cache = os.environ.get("STEERNB_CACHE")
    os.environ["STEERNB_CACHE"] = str(work / "cache")  # a cold cache, so the build time is measured
    try:
        root = _write_jpeg_tree(work / "jpeg")
        rows = []
        for size, crop, padding in SETTINGS:
            ours, build = _steernb_rate(root, size, crop, padding)
            theirs = _torchvision_rate(root, size, crop, padding)
            rows.append(f"| {size} px, {crop} px crops | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.1f}x | {build:.1f} s |")
    finally:
        if old_cache is None: os.environ.pop("STEERNB_CACHE", None)
        else: os.environ["STEERNB_CACHE"] = old_cache
        shutil.rmtree(work, ignore_errors=True)
    n = N_CLASSES * PER_CLASS
    return "\n".join([
        "## Input pipeline (steernb.data)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, Pillow {Image.__version__} (libjpeg-turbo: {features.check('libjpeg_turbo')}), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, device: CPU.",
        "",
        "Command: `OMP_NUM_THREADS=1 .venv/bin/python bench/bench_data.py`",
        "",
        f"Data: {n} synthetic JPEG files of {PHOTO_SIZE[0]} x {PHOTO_SIZE[1]} px (quality 90) in {N_CLASSES} class folders. "
        f"Both pipelines deliver shuffled float batches of {BATCH} in [-1, 1] after resizing the shorter side, a centre crop, "
        "a random crop and a random horizontal flip. steernb: `cache_images` (decoded once) then `iterate_batches`, "
        f"{OUR_EPOCHS} epochs timed. torchvision: `ImageFolder` + PIL + `DataLoader(num_workers=2, persistent_workers=True)` "
        f"with `Resize`, `CenterCrop`, `RandomCrop`, `RandomHorizontalFlip`, `ToTensor`, `Normalize`; {TV_EPOCHS - 1} epoch timed "
        "after one warm-up epoch. The cache build (one-time, decoding with all cores) is listed apart.",
        "",
        "| setting | steernb images/s | torchvision images/s | speed-up | steernb cache build |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])


if __name__ == "__main__":
    print(run())
