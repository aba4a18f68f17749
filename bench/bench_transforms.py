"""Benchmark steernb.transforms against a per-image OpenCV loop on 64 x 3 x 256 x 256 images.

The reference follows the published steerability code (github.com/ali-design/gan_steerability,
utils/transforms.py). It copies each image to the CPU as a float64 HWC array and warps it with
`cv2.warpAffine` (bilinear, zero border). A ones image is warped the same way and every nonzero
pixel of it counts as valid. Colour is a per-channel add. Both sides get the same affine matrices,
so their outputs can be compared. Run it alone with `python bench/bench_transforms.py`.
"""
import os
import platform
import time

import numpy as np
import torch

from steernb.transforms import TRANSFORM_NAMES, apply_many, get_transform

N, C, SIZE = 64, 3, 256
REPEATS = 3  # each figure is the fastest of this many runs


def _images(seed: int = 0) -> torch.Tensor:
    "Return smooth random float32 images (N, C, SIZE, SIZE) in [-1, 1], so bilinear outputs are comparable."
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(N, C, 16, 16, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=True).clamp(-1, 1)


def _best_time(fn) -> tuple[float, object]:
    "Return the fastest wall-clock time of `REPEATS` calls of `fn` in seconds, and the last result."
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _interior(mask: torch.Tensor, margin: int = 2) -> torch.Tensor:
    "Return the mask `(N, 1, H, W)` shrunk by `margin` pixels, leaving out pixels near a mask border."
    return 1 - torch.nn.functional.max_pool2d(1 - mask, 2 * margin + 1, stride=1, padding=margin)


def _reference(cv2, x: torch.Tensor, stages: list[np.ndarray], offsets: np.ndarray | None):
    "Warp each image through the 2 x 3 forward matrices `stages` (N, 2, 3 each) with OpenCV in float64, then add `offsets` (N, 3)."
    targets, masks = [], []
    h, w = x.shape[-2:]
    for i in range(len(x)):
        img = x[i].detach().cpu().numpy().transpose(1, 2, 0).astype(np.float64)
        mask = np.ones_like(img)
        for m in stages:
            img = cv2.warpAffine(img, m[i], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            mask = cv2.warpAffine(mask, m[i], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if offsets is not None: img = img + offsets[i]
        targets.append(img)
        masks.append(mask)
    masks = np.stack(masks)
    if stages: masks[np.nonzero(masks)] = 1.0  # as in the published code: once per batch, every touched pixel is valid
    return torch.from_numpy(np.stack(targets)).permute(0, 3, 1, 2).float(), torch.from_numpy(masks[..., :1]).permute(0, 3, 1, 2).float()


def _case(cv2, x: torch.Tensor, alphas: dict) -> dict:
    "Time steernb and the OpenCV loop on one set of alphas; return the figures of one table row."
    stages = [get_transform(n).matrix(alphas[n].double(), SIZE, SIZE)[:, :2].numpy() for n in TRANSFORM_NAMES[:4] if n in alphas]
    offsets = alphas["color"].double().numpy() if "color" in alphas else None
    ours, (target, mask) = _best_time(lambda: apply_many(x, alphas))
    ref, (ref_target, ref_mask) = _best_time(lambda: _reference(cv2, x, stages, offsets))
    both = _interior(mask * ref_mask).bool().expand_as(target)
    return {"ours": N / ours, "ref": N / ref, "diff": (target - ref_target)[both].abs().max().item(),
            "mask_agree": (mask == ref_mask).float().mean().item()}


def _exact_cases(x: torch.Tensor) -> str:
    "Check integer shifts and right angles against pixel permutations; return a markdown line."
    rot = get_transform("rotate").apply(x, 90.0)[0]
    rot_err = (rot - torch.rot90(x, 1, dims=(2, 3))).abs().max().item()
    shifted = get_transform("shift_x").apply(x, 17.0)[0]
    shift_err = (shifted[..., 17:] - x[..., :-17]).abs().max().item() + shifted[..., :17].abs().max().item()
    return (f"Exactness on the same images: rotate by 90 degrees vs `torch.rot90`, max abs difference {rot_err:g}; "
            f"shift_x by 17 pixels vs a slice copy with zero fill, max abs difference {shift_err:g}.")


def run() -> str:
    "Run the benchmark and return its markdown section."
    try:
        import cv2
    except ImportError:
        return ("## transforms\n\nSkipped: OpenCV is not installed. Install it with "
                "`pip install opencv-python-headless` (the `bench` extra) to compare against the reference loop.")
    threads = torch.get_num_threads()
    cv2.setNumThreads(threads)
    x = _images()
    g = torch.Generator().manual_seed(0)
    rows = []
    cases = [(name, {name: get_transform(name, size=SIZE).sample_alpha(N, generator=g)}) for name in TRANSFORM_NAMES]
    cases.append(("all five (apply_many)", {n: get_transform(n, size=SIZE).sample_alpha(N, generator=g) for n in TRANSFORM_NAMES}))
    for label, alphas in cases:
        r = _case(cv2, x, alphas)
        rows.append(f"| {label} | {r['ours']:,.0f} | {r['ref']:,.0f} | {r['ours'] / r['ref']:.2f} | {r['diff']:.3g} | {100 * r['mask_agree']:.2f} |")
    return "\n".join([
        "## transforms",
        "",
        f"Images/s of `steernb.transforms` (batched torch, float32) against the per-image OpenCV loop of the published "
        f"steerability code (copy to the CPU, float64 `cv2.warpAffine` of the image and of a ones mask). "
        f"{N} x {C} x {SIZE} x {SIZE} smooth random images, alphas from each transform's `sample_alpha` (seed 0), "
        f"fastest of {REPEATS} runs, {threads} torch and OpenCV threads, CPU, OpenCV {cv2.__version__}.",
        "",
        "Command: `python bench/run_all.py transforms` (or `make bench`).",
        "",
        "| transform | steernb images/s | OpenCV loop images/s | ratio | max abs diff, 2 px inside both masks | mask agreement % |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "OpenCV quantises bilinear weights to 1/32 pixel, so the outputs differ by a few thousandths. Masks differ on border "
        "pixels: the reference marks every pixel that its bilinear mask touches, steernb only pixels whose source coordinate "
        "lies inside the image. For the composition the reference resamples once per transform and steernb once in all. "
        "The published code zooms by cropping or padding and `cv2.resize`; here zoom uses `cv2.warpAffine` like the others.",
        "",
        _exact_cases(x),
    ])


if __name__ == "__main__":
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {os.cpu_count()} cores")
    print(run())
