"""Training throughput of steernb.train against a plain PyTorch loop, and what the imagenet25 profile needs on one GPU.

The plain loop is the pattern of the PyTorch ImageNet example: PNG files read by `ImageFolder`, augmented
with PIL transforms in `DataLoader` workers, a float32 model. Both sides train the same model with the
same batch size and the same SimCLR-style augmentation. Run: `python bench/bench_train.py`; `BENCH_TRAIN_WORKERS` sets the plain
loop's data-loader workers (default: 2, or 1 on a single core).
"""
from __future__ import annotations
import os, platform, resource, tempfile, time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms as T

from steernb.core import torch_load
from steernb.data import ImageSet, load_mnist5k, take_per_class
from steernb.train import MNIST5K_ARCH, TrainConfig, build_model, train_classifier

BATCH_SIZE = 128
EPOCHS = 2  # the first epoch warms up; figures come from the second
IMAGES = {32: 768, 64: 384}  # training images per size; each side trains some 5-20 s on a quiet 2-core CPU
ARCH_CANDIDATES = ("resnet10_s2_w16", "resnet18_s2_w16", "resnet10_s2_w32", "resnet10_imagenet", "resnet18_imagenet")

# The imagenet25 profile follows the original experiment: 25 ImageNet classes, 650 real images per class,
# ResNet50 at 112 px crops, one cosine schedule of 300 epochs.
PAPER_CLASSES, PAPER_REAL_PER_CLASS, PAPER_EPOCHS = 25, 650, 300
PAPER_CONDITION_IMAGES = {  # training images per class of each condition
    "original": PAPER_REAL_PER_CLASS, "original+transform": 2 * PAPER_REAL_PER_CLASS,
    "original+generated": 2 * PAPER_REAL_PER_CLASS, "generated": 2 * PAPER_REAL_PER_CLASS,
    "original+unsteered": 2 * PAPER_REAL_PER_CLASS}
# NVIDIA DeepLearningExamples, PyTorch ResNet50 v1.5 README (pytorch-21.03 container): one A100 80GB
# trains 2,470 img/s with mixed precision at 224 px.
A100_AMP_224_IMG_PER_S = 2470


def scaled_set(ds: ImageSet, size: int) -> ImageSet:
    "Resize an ImageSet to `size` px (bilinear)."
    if ds.images.shape[-1] == size: return ds
    x = F.interpolate(ds.images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return ImageSet(x.round().clamp(0, 255).to(torch.uint8), ds.labels, ds.classes)


def write_image_folder(ds: ImageSet, root: Path) -> Path:
    "Write every image as `root/<class>/<i>.png`, the layout `ImageFolder` reads."
    for i, (img, label) in enumerate(zip(ds.images, ds.labels.tolist())):
        folder = root / ds.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        torchvision.io.write_png(img, str(folder / f"{i:05d}.png"))
    return root


def cpu_seconds() -> float:
    "Return the CPU time of this process and of its finished child processes (data-loader workers)."
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def plain_loop_img_per_s(root: Path, arch: str, size: int, workers: int) -> tuple[float, float]:
    "Train with ImageFolder + PIL transforms + DataLoader in float32; return the last epoch's images/s and CPU ms per image."
    augment = T.Compose([
        T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
        T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    data = torchvision.datasets.ImageFolder(str(root), augment)
    # Workers end with each epoch, so their CPU time is counted in RUSAGE_CHILDREN.
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, num_workers=workers)
    torch.manual_seed(0)
    model = build_model(arch, len(data.classes), size)
    opt = torch.optim.SGD(model.parameters(), lr=0.03 * BATCH_SIZE / 256, momentum=0.9, weight_decay=1e-4)
    model.train()
    for _ in range(EPOCHS):
        start, cpu, seen = time.perf_counter(), cpu_seconds(), 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
    return seen / (time.perf_counter() - start), 1000 * (cpu_seconds() - cpu) / seen


def trainer_img_per_s(train: ImageSet, test: ImageSet, arch: str, ckpt_dir: Path) -> tuple[float, float]:
    "Train with steernb.train (SimCLR augmentation on the batch); return the last epoch's images/s and CPU ms per image."
    cfg = TrainConfig(arch=arch, epochs=EPOCHS, batch_size=BATCH_SIZE, augment="simclr", device="cpu", eval_every=EPOCHS)
    train_classifier(train, test, cfg, ckpt_dir, until_epoch=EPOCHS - 1)
    cpu = cpu_seconds()  # the CPU time of the last call includes one small evaluation and two checkpoint writes
    train_classifier(train, test, cfg, ckpt_dir, until_epoch=EPOCHS)
    history = torch_load(ckpt_dir / "last.pt")["history"]
    return history[-1]["img_per_s"], 1000 * (cpu_seconds() - cpu) / history[-1]["train_images"]


def paper_budget() -> str:
    "Return a paragraph on the images, runs and GPU hours of the imagenet25 profile."
    per_condition = {c: n * PAPER_CLASSES * PAPER_EPOCHS for c, n in PAPER_CONDITION_IMAGES.items()}
    total = sum(per_condition.values())
    low, high = A100_AMP_224_IMG_PER_S, 4 * A100_AMP_224_IMG_PER_S
    lines = [f"- `{c}`: {n // PAPER_EPOCHS:,} images x {PAPER_EPOCHS} epochs = {n / 1e6:.2f} M images per run"
             for c, n in per_condition.items()]
    return "\n".join([
        "### imagenet25 profile on one GPU (computed, not measured)",
        "",
        f"One seed of the five conditions trains ResNet50 on {total / 1e6:.1f} M images (one cosine schedule of "
        f"{PAPER_EPOCHS} epochs per condition, with the 100 and 200 epoch budgets read from its checkpoints):",
        "", *lines, "",
        f"Assumed throughput: NVIDIA reports {A100_AMP_224_IMG_PER_S:,} img/s for ResNet50 training with mixed "
        "precision on one A100 80GB at 224 px (DeepLearningExamples, PyTorch ResNet50 v1.5 README). At 112 px a "
        "step costs a quarter of the FLOPs, so 112 px training should run between that rate and four times it; "
        f"this range is an assumption. That gives {total / high / 3600:.1f} to {total / low / 3600:.1f} GPU hours "
        f"per seed, {3 * total / high / 3600:.1f} to {3 * total / low / 3600:.1f} hours for three seeds, and twice "
        "that with `schedule=\"per_budget\"` (100 + 200 + 300 epochs per condition instead of 300). Evaluating "
        "the 1,250 test images every epoch adds an estimated 1-3 %, since a forward pass costs about a third of a "
        "training step.",
    ])


def run() -> str:
    "Measure both training loops at 32 and 64 px and the candidate models, and return a markdown section."
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    os.environ.setdefault("STEERNB_PROGRESS", "0")
    workers = int(os.environ.get("BENCH_TRAIN_WORKERS", min(2, os.cpu_count() or 1)))  # data-loader workers of the plain loop
    full, test = load_mnist5k("train"), load_mnist5k("test")
    rows, arch_rows = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size, n in IMAGES.items():
            train = scaled_set(take_per_class(full, n // len(full.classes), seed=0), size)
            small_test = scaled_set(take_per_class(test, 10, seed=0), size)
            root = write_image_folder(train, tmp / f"folder{size}")
            plain, plain_cpu = plain_loop_img_per_s(root, MNIST5K_ARCH, size, workers)
            ours, ours_cpu = trainer_img_per_s(train, small_test, MNIST5K_ARCH, tmp / f"ckpt{size}")
            rows.append(f"| {size} px | {len(train)} | {plain:.0f} | {ours:.0f} | {ours / plain:.2f}x "
                        f"| {plain_cpu:.1f} | {ours_cpu:.1f} | {plain_cpu / ours_cpu:.2f}x |")
        train = take_per_class(full, 20, seed=0)
        for arch in ARCH_CANDIDATES:
            params = sum(p.numel() for p in build_model(arch, 10, 32).parameters())
            ips, cpu_ms = trainer_img_per_s(train, take_per_class(test, 10, seed=0), arch, tmp / f"arch-{arch}")
            arch_rows.append(f"| `{arch}` | {params / 1e6:.2f} M | {ips:.0f} | {cpu_ms:.1f} |")
    elapsed = time.perf_counter() - t0
    machine = (f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
               f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}")
    return "\n".join([
        "## Classifier training (steernb.train)",
        "",
        f"Machine: {machine}. Command: `python bench/bench_train.py` ({elapsed:.0f} s).",
        "",
        f"Training images/s on the CPU, model `{MNIST5K_ARCH}`, batch {BATCH_SIZE}, SimCLR-style augmentation "
        f"(random resized crop 0.2-1, flip, colour jitter, grayscale), mnist5k digits, second of {EPOCHS} epochs. "
        f"Plain loop: `ImageFolder` of PNG files, PIL transforms, `DataLoader` with {workers} workers, float32. "
        "steernb: uint8 tensors in memory, augmentation on the whole batch.",
        "",
        "CPU ms per image counts every thread and data-loader worker. With one torch thread it changes little when "
        "other jobs share the machine; with more, threads that wait for each other on a busy machine inflate it.",
        "",
        "| size | images | plain loop img/s | steernb img/s | speedup | plain loop CPU ms/img | steernb CPU ms/img | CPU ratio |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Candidate models for the mnist5k profile (steernb trainer, 32 px, batch "
        f"{BATCH_SIZE}, second of {EPOCHS} epochs of 200 images):",
        "",
        "| arch | parameters | train img/s | CPU ms/img |",
        "|---|---|---|---|",
        *arch_rows,
        "",
        paper_budget(),
        "",
    ])


if __name__ == "__main__":
    print(run())
