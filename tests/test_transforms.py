"""Edge cases of steernb.transforms: dtypes, devices, gradients, exact pixel moves, errors and composition."""
import math

import pytest
import torch

from steernb.transforms import TRANSFORM_NAMES, apply_many, get_transform

GEOMETRIC = ("rotate", "zoom", "shift_x", "shift_y")
# One alpha per path: a fractional value (bilinear or interpolated shift) and an exact one.
FRACTIONAL = {"rotate": 17.0, "zoom": 1.37, "shift_x": 2.3, "shift_y": -1.6, "color": 0.2}
EXACT = {"rotate": 90.0, "zoom": 1.0, "shift_x": 3.0, "shift_y": -2.0, "color": 0.0}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def alpha_for(name: str, value: float, n: int) -> torch.Tensor:
    "Return `value` as the alpha of `name` for `n` images."
    return torch.full((n, 3) if name == "color" else (n,), value)


def smooth_images(n: int = 2, size: int = 40, dtype=torch.float64) -> torch.Tensor:
    "Return smooth images (n, 3, size, size), so that one or two bilinear resamplings agree closely."
    v, u = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = torch.stack((torch.sin(2 * u + v), torch.cos(3 * v - u), u * v)).to(dtype)
    return torch.stack([img * (1 + 0.1 * i) for i in range(n)])


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_and_shape_kept(name, dtype):
    x = torch.randn(3, 3, 9, 12).to(dtype)
    for value in (FRACTIONAL[name], EXACT[name]):
        target, mask = get_transform(name).apply(x, alpha_for(name, value, 3))
        assert target.dtype == dtype
        assert mask.dtype == dtype
        assert target.shape == x.shape
        assert mask.shape == (3, 1, 9, 12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_device_kept(name, device):
    x = torch.randn(2, 3, 8, 8, device=device)
    target, mask = get_transform(name).apply(x, alpha_for(name, FRACTIONAL[name], 2).to(device))
    assert target.device == x.device
    assert mask.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(4, 3, 16, 16)
    alphas = {"rotate": torch.tensor([0.0, 90.0, 13.0, -40.0]), "shift_x": torch.tensor([1.0, 2.5, 0.0, -3.0])}
    cpu, cpu_mask = apply_many(x, alphas)
    gpu, gpu_mask = apply_many(x.cuda(), {k: v.cuda() for k, v in alphas.items()})
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)
    assert torch.equal(gpu_mask.cpu(), cpu_mask)


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
@pytest.mark.parametrize("kind", ["fractional", "exact"])
def test_gradients_reach_x(name, kind):
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    value = (FRACTIONAL if kind == "fractional" else EXACT)[name]
    target, mask = get_transform(name).apply(x, alpha_for(name, value, 2))
    (target * mask).square().sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_gradcheck_bilinear_and_translation():
    x = torch.randn(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    rotate = get_transform("rotate")
    assert torch.autograd.gradcheck(lambda x: rotate.apply(x, torch.tensor([23.0, -61.0]))[0], (x,))
    assert torch.autograd.gradcheck(lambda x: apply_many(x, {"shift_x": 1.3, "shift_y": -0.4})[0], (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_neutral_alpha_returns_input(name, dtype):
    x = torch.randn(3, 3, 11, 8).to(dtype)
    t = get_transform(name)
    target, mask = t.apply(x, t.neutral)
    assert torch.equal(target, x)
    assert torch.equal(mask, torch.ones_like(mask))


@pytest.mark.parametrize("size", [(8, 8), (9, 9), (256, 256), (6, 10)])
@pytest.mark.parametrize("k", [-3, -2, -1, 1, 2, 3, 4, 5])
def test_right_angles_are_permutations(size, k):
    h, w = size
    x = torch.randn(2, 3, h, w)
    target, mask = get_transform("rotate").apply(x, 90.0 * k)
    if h == w or k % 2 == 0:
        assert torch.equal(target, torch.rot90(x, k, dims=(2, 3)))
        assert torch.equal(mask, torch.ones_like(mask))
    else:  # about the centre of a 6 x 10 image, the middle 6 x 6 square turns onto itself and the rest is masked
        cols = slice((w - h) // 2, (w + h) // 2)
        assert torch.equal(target[..., cols], torch.rot90(x[..., cols], k, dims=(2, 3)))
        assert mask.sum() == 2 * h * h


def test_right_angle_on_non_square_image():
    # About the centre of a 6 x 10 image, 90 degrees maps the middle 6 columns onto themselves, turned.
    x = torch.randn(1, 1, 6, 10)
    target, mask = get_transform("rotate").apply(x, 90.0)
    assert torch.equal(target[..., 2:8], torch.rot90(x[..., 2:8], 1, dims=(2, 3)))
    assert torch.equal(mask[0, 0, 0], torch.tensor([0.0, 0, 1, 1, 1, 1, 1, 1, 0, 0]))
    assert target[..., :2].abs().max() == 0


@pytest.mark.parametrize("name", ["shift_x", "shift_y"])
def test_integer_shifts_are_exact(name):
    x = torch.randn(7, 3, 12, 12)
    shifts = torch.tensor([-11.0, -5.0, -1.0, 0.0, 1.0, 6.0, 11.0])
    target, mask = get_transform(name).apply(x, shifts)
    dim = 3 if name == "shift_x" else 2
    for i, s in enumerate(shifts.long().tolist()):
        expected = torch.roll(x[i], s, dims=dim - 1)
        valid = torch.zeros(12, dtype=torch.bool)
        valid[max(s, 0):12 + min(s, 0)] = True
        view = (1, 1, 12) if dim == 3 else (1, 12, 1)
        expected = expected * valid.view(view)
        assert torch.equal(target[i], expected)
        assert torch.equal(mask[i, 0].amin(dim=0 if dim == 3 else 1), valid.float())


def test_integer_shift_with_float_error_is_exact():
    x = torch.randn(2, 3, 10, 10)
    target, _ = get_transform("shift_x").apply(x, torch.tensor([3.0 + 1e-9, -2.0 - 1e-9]))
    assert torch.equal(target[0, ..., 3:], x[0, ..., :-3])
    assert torch.equal(target[1, ..., :-2], x[1, ..., 2:])


def test_fractional_shift_interpolates_linearly():
    x = torch.arange(10.0).repeat(1, 3, 4, 1)  # columns hold 0..9
    target, mask = get_transform("shift_x").apply(x, torch.tensor([2.25]))
    torch.testing.assert_close(target[0, 0, 0, 3:], torch.arange(3, 10.0) - 2.25)
    assert torch.equal(mask[0, 0, 0], torch.tensor([0.0, 0, 0, 1, 1, 1, 1, 1, 1, 1]))
    assert target[0, :, :, :3].abs().max() == 0


def test_mixed_batch_matches_single_images():
    x = torch.randn(5, 3, 12, 12)
    alpha = torch.tensor([0.0, 90.0, 30.0, 180.0, -17.5])  # translation, nearest, bilinear, nearest, bilinear
    target, mask = get_transform("rotate").apply(x, alpha)
    for i in range(5):
        one, one_mask = get_transform("rotate").apply(x[i:i + 1], alpha[i:i + 1])
        assert torch.equal(target[i:i + 1], one)
        assert torch.equal(mask[i:i + 1], one_mask)


def test_rotation_is_counter_clockwise():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 18] = 1.0  # right of the centre
    target, _ = get_transform("rotate").apply(x, 30.0)
    v, u = divmod(int(target[0, 0].argmax()), 21)
    assert u > 10
    assert v < 10  # moved up, so counter-clockwise as displayed
    assert math.hypot(u - 10, v - 10) == pytest.approx(8, abs=1)


def test_rotation_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    import numpy as np
    x = smooth_images(1, 32)
    target, mask = get_transform("rotate").apply(x, 25.0)
    # OpenCV's positive angle is counter-clockwise too. Its bilinear weights are quantised to 1/32 pixel.
    m = cv2.getRotationMatrix2D((15.5, 15.5), 25.0, 1.0)
    ref = cv2.warpAffine(x[0].numpy().transpose(1, 2, 0), m, (32, 32), flags=cv2.INTER_LINEAR)
    ref = torch.from_numpy(np.ascontiguousarray(ref.transpose(2, 0, 1)))[None]
    inner = mask.bool().expand_as(x)
    torch.testing.assert_close(target[inner], ref[inner], atol=0.02, rtol=0)


def test_zoom_enlarges_and_masks_border():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 8:13, 8:13] = 1.0  # a 5 x 5 square in the centre
    big, big_mask = get_transform("zoom").apply(x, 2.0)
    small, small_mask = get_transform("zoom").apply(x, 0.5)
    assert (big > 0.5).sum() > (x > 0.5).sum()
    assert (small > 0.5).sum() < (x > 0.5).sum()
    assert torch.equal(big_mask, torch.ones_like(big_mask))
    assert small_mask[0, 0, 0, 0] == 0
    assert small_mask[0, 0, 10, 10] == 1
    assert small_mask.sum() == 11 * 11  # half of 21 pixels around the centre: offsets -5..5


@pytest.mark.parametrize("name,alpha,message", [
    ("zoom", 0.0, "zoom: alpha is a magnification and must be > 0"),
    ("zoom", -2.0, "must be > 0"),
    ("shift_x", 16.0, "shift_x: |alpha| must be smaller than the image width (16 pixels)"),
    ("shift_x", -16.5, "image width"),
    ("shift_y", 12.0, "shift_y: |alpha| must be smaller than the image height (12 pixels)"),
    ("rotate", float("nan"), "rotate: alpha must be finite"),
    ("zoom", float("inf"), "zoom: alpha must be finite"),
    ("shift_y", float("-inf"), "shift_y: alpha must be finite"),
    ("color", float("nan"), "color: alpha must be finite"),
])
def test_invalid_alpha_values(name, alpha, message):
    x = torch.randn(2, 3, 12, 16)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        get_transform(name).apply(x, alpha)


@pytest.mark.parametrize("name,alpha", [
    ("rotate", torch.zeros(3)), ("rotate", torch.zeros(2, 1)), ("zoom", torch.ones(1, 2)),
    ("shift_x", torch.zeros(2, 3)), ("color", torch.zeros(2)), ("color", torch.zeros(2, 4)), ("color", torch.zeros(3)),
])
def test_wrong_alpha_shape(name, alpha):
    with pytest.raises(ValueError, match=f"{name}: alpha must have shape"):
        get_transform(name).apply(torch.randn(2, 3, 8, 8), alpha)


def test_invalid_images():
    with pytest.raises(ValueError, match="rotate: x must be a float tensor"):
        get_transform("rotate").apply(torch.zeros(3, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError, match="torch.int64"):
        get_transform("zoom").apply(torch.zeros(1, 3, 8, 8, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="at least 2 x 2"):
        get_transform("shift_x").apply(torch.zeros(1, 3, 8, 1), 0.0)
    with pytest.raises(ValueError, match="3 channels"):
        get_transform("color").apply(torch.zeros(1, 4, 8, 8), torch.zeros(1, 3))


def test_unknown_names():
    with pytest.raises(ValueError, match="Valid names: rotate, zoom, shift_x, shift_y, color"):
        get_transform("rotate3d")
    with pytest.raises(ValueError, match=r"unknown transform\(s\) \['flip'\]"):
        apply_many(torch.zeros(1, 3, 8, 8), {"flip": 1.0})


def test_empty_batch():
    x = torch.zeros(0, 3, 8, 8)
    for name in TRANSFORM_NAMES:
        target, mask = get_transform(name).apply(x, torch.zeros((0, 3) if name == "color" else (0,)) + (name == "zoom"))
        assert target.shape == x.shape
        assert mask.shape == (0, 1, 8, 8)


def test_sample_alpha_is_seeded_and_in_range():
    for name in TRANSFORM_NAMES:
        t = get_transform(name, size=64)
        a = t.sample_alpha(5000, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, t.sample_alpha(5000, generator=torch.Generator().manual_seed(1)))
        assert not torch.equal(a, t.sample_alpha(5000, generator=torch.Generator().manual_seed(2)))
        assert a.dtype == torch.float32
    rot = get_transform("rotate").sample_alpha(5000, generator=torch.Generator().manual_seed(0))
    assert rot.abs().max() <= 45
    assert rot.abs().max() > 44
    zoom = get_transform("zoom").sample_alpha(5000, generator=torch.Generator().manual_seed(0))
    assert zoom.min() >= 0.25
    assert zoom.max() <= 4
    assert abs((zoom < 1).float().mean().item() - 0.5) < 0.03  # log-uniform: as many shrinks as enlargements
    assert abs((zoom < 2).float().mean().item() - 0.75) < 0.03
    shift = get_transform("shift_y").sample_alpha(5000, generator=torch.Generator().manual_seed(0), size=64)
    assert shift.abs().max() <= 32
    assert shift.abs().max() > 31
    color = get_transform("color").sample_alpha(5000, generator=torch.Generator().manual_seed(0))
    assert color.shape == (5000, 3)
    assert color.abs().max() <= 0.5


def test_shift_size_comes_from_call_or_transform():
    t = get_transform("shift_x", size=32)
    assert t.sample_alpha(1000, generator=torch.Generator().manual_seed(0)).abs().max() <= 16
    assert t.sample_alpha(1000, generator=torch.Generator().manual_seed(0), size=8).abs().max() <= 4
    assert torch.equal(t.walk_coef(torch.tensor([8.0])), torch.tensor([[0.5]]))
    assert torch.equal(t.walk_coef(torch.tensor([8.0]), size=64), torch.tensor([[0.25]]))
    with pytest.raises(ValueError, match="shift_y: the alpha range depends on the image size"):
        get_transform("shift_y").walk_coef(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="size must be an image size"):
        get_transform("shift_x", size=2.5)


def test_walk_coef_shapes_and_values():
    assert get_transform("rotate").walk_coef(torch.tensor(-45.0)).tolist() == [[-1.0]]
    coef = get_transform("zoom").walk_coef(torch.tensor([0.25, 2.0, 4.0]))
    torch.testing.assert_close(coef, torch.tensor([[-1.0], [0.5], [1.0]]))
    assert get_transform("color").walk_coef(torch.tensor([[0.1, 0.2, -0.5]])).shape == (1, 3)
    assert get_transform("rotate").walk_coef(torch.tensor([10, 20])).dtype == torch.float32
    assert get_transform("rotate").walk_coef(torch.tensor([10.0], dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="rotate: alpha must be finite"):
        get_transform("rotate").walk_coef(torch.tensor([float("nan")]))


def test_walk_coef_keeps_gradient_to_alpha():
    alpha = torch.tensor([1.5, 2.0], requires_grad=True)
    get_transform("zoom").walk_coef(alpha).sum().backward()
    torch.testing.assert_close(alpha.grad, 1 / (alpha.detach() * math.log(4)))


def sequential(x: torch.Tensor, alphas: dict) -> tuple[torch.Tensor, torch.Tensor]:
    "Apply the transforms one after another, moving the mask of earlier steps along with the image."
    step, step_mask = x, torch.ones(len(x), 1, *x.shape[-2:], dtype=x.dtype)
    for name in TRANSFORM_NAMES:
        if name not in alphas: continue
        t = get_transform(name)
        step, m = t.apply(step, alphas[name])
        moved = step_mask if name == "color" else (t.apply(step_mask, alphas[name])[0] > 0.5).to(x.dtype)
        step_mask = moved * m
    return step, step_mask


def test_composition_equals_sequential_application():
    x = smooth_images(2, 48)
    alphas = {"rotate": torch.tensor([20.0, -35.0]), "zoom": torch.tensor([1.3, 0.8]),
              "shift_x": torch.tensor([2.5, -4.0]), "shift_y": torch.tensor([-1.5, 3.0]),
              "color": torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -0.5]])}
    target, mask = apply_many(x, dict(reversed(alphas.items())))  # the dictionary order does not matter
    step, step_mask = sequential(x, alphas)
    # Away from mask borders (2 pixels in), one resampling matches several up to interpolation error.
    inner = (1 - torch.nn.functional.max_pool2d(1 - mask * step_mask, 5, stride=1, padding=2)).bool().expand_as(x)
    assert inner.float().mean() > 0.4
    torch.testing.assert_close(target[inner], step[inner], atol=0.02, rtol=0)
    assert (mask != step_mask).float().mean() < 0.02  # they differ only along mask borders
    assert torch.equal(target * (1 - mask), torch.zeros_like(target))


def test_composed_masks_multiply_exactly():
    x = torch.randn(3, 3, 16, 16)
    alphas = {"rotate": torch.tensor([90.0, 180.0, 0.0]), "shift_x": torch.tensor([3.0, -5.0, 0.0]),
              "shift_y": torch.tensor([0.0, 2.0, -7.0])}
    target, mask = apply_many(x, alphas)
    step, step_mask = sequential(x, alphas)
    assert torch.equal(target, step)
    assert torch.equal(mask, step_mask)


def test_composition_keeps_content_lost_in_between():
    # Zooming in by 4 crops the border, and shifting by 8 then shows a region that the zoom already cut away.
    # The composed map alone would find those pixels inside the source.
    x = torch.randn(1, 3, 16, 16)
    target, mask = apply_many(x, {"zoom": 4.0, "shift_x": 8.0})
    assert torch.equal(mask[0, 0, 0], torch.tensor([0.0] * 8 + [1.0] * 8))
    assert target[..., :8].abs().max() == 0


def test_apply_many_validates_before_work():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="color: alpha must have shape"):
        apply_many(x, {"rotate": 10.0, "color": torch.zeros(2)})
    with pytest.raises(ValueError, match="shift_x: \\|alpha\\| must be smaller"):
        apply_many(x, {"shift_x": torch.tensor([1.0, 9.0])})
    target, mask = apply_many(x, {})
    assert torch.equal(target, x)
    assert torch.equal(mask, torch.ones(2, 1, 8, 8))
