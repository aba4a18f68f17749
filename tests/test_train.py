"""Training: resume, budgets, failures, bad inputs, CPU checks of the GPU paths, and torchrun with 2 processes."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

from steernb.core import load_json, read_jsonl, torch_load
from steernb.data import ImageSet
import steernb.train as st
from steernb.train import NonFiniteLossError, TrainConfig, augment_batch, build_model, evaluate, train_classifier


def colour_set(n: int, seed: int, size: int = 16) -> ImageSet:
    "Four classes of noisy images with a bright square: red, green, blue or white (unchanged by crops and flips)."
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randint(0, 60, (n, 3, size, size), generator=g, dtype=torch.uint8)
    lo, hi = size // 4, size - size // 4
    for i, c in enumerate(y.tolist()):
        x[i, [c] if c < 3 else [0, 1, 2], lo:hi, lo:hi] += 150
    return ImageSet(x, y, ["red", "green", "blue", "white"])


TRAIN, TEST = colour_set(96, 0), colour_set(48, 1)
TINY = TrainConfig(arch="resnet10_s2_w8", epochs=3, lr=3.2, batch_size=16, augment="crop_flip", padding=2, seed=3)


def weights(folder: Path) -> dict:
    return torch_load(folder / "last.pt")["model"]


def test_training_learns(tmp_path):
    result = train_classifier(TRAIN, TEST, TrainConfig(**{**TINY.to_dict(), "epochs": 6}), tmp_path)
    assert result["status"] == "ok"
    assert result["top1"] >= 90.0, result
    assert set(result["per_class"]) == {"red", "green", "blue", "white"}


def test_resume_after_interruption_is_exact(tmp_path, monkeypatch):
    full = train_classifier(TRAIN, TEST, TINY, tmp_path / "full")

    calls = {"n": 0}
    real_augment = st.augment_batch

    def crash_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # 6 steps per epoch: the third step of epoch 2
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(st, "augment_batch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(TRAIN, TEST, TINY, tmp_path / "cut")
    assert torch_load(tmp_path / "cut" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(st, "augment_batch", real_augment)
    resumed = train_classifier(TRAIN, TEST, TINY, tmp_path / "cut", metrics_path=tmp_path / "run" / "metrics.json")

    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["top1"] == full["top1"]
    assert resumed["per_class"] == full["per_class"]
    assert [r["epoch"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]


def test_one_schedule_budgets_continue(tmp_path):
    first = train_classifier(TRAIN, TEST, TINY, tmp_path / "steps", until_epoch=2)
    last = train_classifier(TRAIN, TEST, TINY, tmp_path / "steps", until_epoch=3)
    full = train_classifier(TRAIN, TEST, TINY, tmp_path / "full")
    assert (first["epochs"], last["epochs"], last["schedule_epochs"]) == (2, 3, 3)
    assert last["top1"] == full["top1"]
    a, b = weights(tmp_path / "steps"), weights(tmp_path / "full")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "steps").glob("epoch_*.pt")) == ["epoch_0002.pt", "epoch_0003.pt"]
    # a budget already passed is read back from the recorded history
    assert train_classifier(TRAIN, TEST, TINY, tmp_path / "steps", until_epoch=2) == first


def test_per_budget_schedules_end_at_zero(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "schedule": "per_budget"})
    one = train_classifier(TRAIN, TEST, cfg, tmp_path, until_epoch=1)
    two = train_classifier(TRAIN, TEST, cfg, tmp_path, until_epoch=2)
    assert (one["schedule_epochs"], two["schedule_epochs"]) == (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget_0001", "budget_0002"]
    steps = st.steps_per_epoch(len(TRAIN), TINY.batch_size)
    for epochs in (1, 2):
        history = torch_load(tmp_path / f"budget_{epochs:04d}" / "last.pt")["history"]
        last_step = epochs * steps - 1  # the last step of each budget is the last step of its own cosine
        assert history[-1]["lr"] == pytest.approx(st.lr_at(last_step, epochs * steps, TINY.peak_lr()))
    assert one["top1"] is not None and two["top1"] is not None


def test_warmup_scales_with_global_batch(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "warmup_epochs": 1, "epochs": 2, "batch_size": 32})
    train_classifier(TRAIN, TEST, cfg, tmp_path, until_epoch=1)
    history = torch_load(tmp_path / "last.pt")["history"]
    assert history[0]["lr"] == pytest.approx(3.2 * 32 / 256)  # last warm-up step reaches the scaled peak


def test_non_finite_loss_fails_run(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "lr": 1e25, "augment": "none"})
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step \d+") as info:
        train_classifier(TRAIN, TEST, cfg, tmp_path / "ckpt", metrics_path=tmp_path / "metrics.json")
    assert info.value.epoch == 1
    assert info.value.step >= 2  # the first step starts from finite initial weights
    record = load_json(tmp_path / "metrics.json")
    assert record["status"] == "failed"
    assert record["top1"] is None
    assert record["failed_step"] == info.value.step
    assert not (tmp_path / "ckpt" / "last.pt").exists()


def test_resume_with_other_settings_rejected(tmp_path):
    train_classifier(TRAIN, TEST, TINY, tmp_path, until_epoch=1)
    with pytest.raises(ValueError, match="lr: 3.2 -> 0.2"):
        train_classifier(TRAIN, TEST, TrainConfig(**{**TINY.to_dict(), "lr": 0.2}), tmp_path)
    with pytest.raises(ValueError, match="another training set"):
        train_classifier(colour_set(96, 5), TEST, TINY, tmp_path)


@pytest.mark.parametrize("change, message", [
    (dict(until_epoch=4), "until_epoch must lie in"),
    (dict(until_epoch=0), "until_epoch must lie in"),
    (dict(cfg=TrainConfig(**{**TINY.to_dict(), "crop": 20})), "crop 20 is larger"),
    (dict(train=TRAIN.subset([0])), "1 training images give no batch"),
    (dict(cfg=TrainConfig(**{**TINY.to_dict(), "num_classes": 3})), "num_classes=3"),
    (dict(test=ImageSet(TEST.images, TEST.labels, ["a", "b", "c", "d"])), "classes differ"),
])
def test_bad_inputs_rejected(tmp_path, change, message):
    args = dict(train=TRAIN, test=TEST, cfg=TINY, ckpt_dir=tmp_path) | change
    with pytest.raises(ValueError, match=message):
        train_classifier(**args)


def test_checkpoint_loads_weights_only(tmp_path):
    train_classifier(TRAIN, TEST, TINY, tmp_path, until_epoch=1)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert TrainConfig.from_dict(ckpt["config"]).arch == "resnet10_s2_w8"
    model = build_model(ckpt["config"]["arch"], ckpt["config"]["num_classes"], 16)
    model.load_state_dict(ckpt["model"])
    assert evaluate(model, TEST)["top1"] == ckpt["history"][-1]["top1"]


def test_simclr_augment_rates():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 3, 8, 8) * 2 - 1
    y = augment_batch(x, "simclr", 8, g)
    grey = (y[:, 0] == y[:, 1]).flatten(1).all(1) & (y[:, 1] == y[:, 2]).flatten(1).all(1)
    assert 0.15 < grey.float().mean() < 0.25  # grayscale with probability 0.2
    assert y.shape == (2000, 3, 8, 8)
    assert y.min() >= -1
    assert y.max() <= 1


def test_augment_without_flip_keeps_orientation():
    g = torch.Generator().manual_seed(0)
    # a random resized crop without a flip keeps the left-to-right order: each row's ramp still rises
    ramp = torch.linspace(-1, 1, 8).expand(64, 3, 8, 8).contiguous()
    y = st.random_resized_crop_flip(ramp, 8, g, flip_p=0.0)
    assert (y[..., 1:] >= y[..., :-1] - 1e-6).all()
    z = st.random_resized_crop_flip(ramp, 8, g, flip_p=1.0)
    assert (z[..., 1:] <= z[..., :-1] + 1e-6).all()


def test_simclr_on_larger_images_crops(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "augment": "simclr", "crop": 12, "epochs": 1})
    result = train_classifier(TRAIN, TEST, cfg, tmp_path)
    assert result["status"] == "ok"
    assert result["test_images"] == len(TEST)


def test_bf16_autocast_on_cpu(tmp_path):
    small_train, small_test = colour_set(32, 0, size=8), colour_set(16, 1, size=8)
    cfg = TrainConfig(arch="resnet10_s2_w4", epochs=1, lr=0.2, batch_size=16, augment="none", amp=True, seed=0)
    result = train_classifier(small_train, small_test, cfg, tmp_path)
    assert result["status"] == "ok"
    assert 0 <= result["top1"] <= 100
    model = build_model("resnet10_s2_w4", 4, 8).eval()
    x = small_test.float_images()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x).float()
    with torch.no_grad():
        full = model(x)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full, rtol=0.05, atol=0.05)


def test_channels_last_matches_contiguous(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "epochs": 1, "augment": "none"})
    plain = train_classifier(TRAIN, TEST, cfg, tmp_path / "plain")
    last = train_classifier(TRAIN, TEST, TrainConfig(**{**cfg.to_dict(), "channels_last": True}), tmp_path / "cl")
    a, b = weights(tmp_path / "plain"), weights(tmp_path / "cl")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)
    assert plain["train_loss"] == pytest.approx(last["train_loss"], rel=1e-4)


@pytest.mark.slow  # inductor compiles C++ kernels on first use: about a minute of CPU time, longer on a busy machine
def test_compile_matches_eager(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "epochs": 1, "augment": "none"})
    eager = train_classifier(TRAIN, TEST, cfg, tmp_path / "eager")
    compiled = train_classifier(TRAIN, TEST, TrainConfig(**{**cfg.to_dict(), "compile": True}), tmp_path / "compiled")
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)
    a, b = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert a.keys() == b.keys()


DIST_SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_train import TRAIN, TEST, TINY, colour_set
from steernb.core import dist_rank, dist_world_size
from steernb.train import TrainConfig, train_classifier
cfg = TrainConfig(**{{**TINY.to_dict(), "epochs": 2}})
result = train_classifier(TRAIN, TEST, cfg, {ckpt!r}, metrics_path={metrics!r})
with open({out!r} + f".{{dist_rank()}}", "w") as f:
    json.dump({{"world": dist_world_size(), "top1": result["top1"], "test_images": result["test_images"]}}, f)
"""


def test_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "dist_train.py"
    script.write_text(DIST_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(tmp_path / "ckpt"),
                                         metrics=str(tmp_path / "run" / "metrics.json"), out=str(tmp_path / "out")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEERNB_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["top1"] == ranks[1]["top1"]
    assert ranks[0]["test_images"] == len(TEST)  # both halves of the test set were counted
    history = torch_load(tmp_path / "ckpt" / "last.pt")["history"]
    assert [h["train_images"] for h in history] == [len(TRAIN)] * 2  # each process trained on its half
    assert proc.stdout.count("epoch ") == 2  # one status line per epoch, from rank 0 only
    assert load_json(tmp_path / "run" / "metrics.json")["status"] == "ok"
