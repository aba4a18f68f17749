"""Steer learning on small real generators: learning, gradients, files, resuming and faults."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from steernb.core import read_jsonl, torch_load
from steernb.gan import ConditionalGenerator, EmbeddedGenerator, gan_config
from steernb.generators import Generator, random_biggan
from steernb.steer import (default_alphas, init_walks, learn_walks, load_walks, plot_achieved_alpha,
                           plot_steerability, save_walks, steerability_table, walk_losses, write_steerability,
                           write_walk_grids)


@pytest.fixture(scope="module")
def G():
    return random_biggan(32)


class LinearGenerator(Generator):
    """An 8 x 8 generator `tanh(W z + E y)` that outputs NaN from call `nan_from` on and raises at call `fail_at`."""

    def __init__(self, seed=0, nan_from=None, fail_at=None):
        super().__init__(8, 3, 8, f"linear-{seed}", {"kind": "linear", "seed": seed})
        torch.manual_seed(seed)
        self.fc = nn.Linear(8, 3 * 8 * 8)
        self.embed = nn.Embedding(3, 3 * 8 * 8)
        self.calls, self.nan_from, self.fail_at = 0, nan_from, fail_at
        self.freeze()

    def synthesize(self, z, y):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        x = torch.tanh(self.fc(z) + self.embed(y)).view(-1, 3, 8, 8)
        return x * float("nan") if self.nan_from is not None and self.calls >= self.nan_from else x


def _losses(out_dir, key):
    return [r[f"loss/{key}"] for r in read_jsonl(out_dir / "metrics.jsonl")]


def test_learn_walks_loss_falls(G, tmp_path):
    learn_walks(G, ["color"], steps=30, batch_size=8, lr=0.02, out_dir=tmp_path)
    loss = _losses(tmp_path, "color")
    assert len(loss) == 30
    assert np.mean(loss[-5:]) < 0.8 * np.mean(loss[:5])


def test_walk_losses_gradients_reach_walks_only(G):
    walks = init_walks(G, ["shift_x", "color"])
    z, y = G.sample_z(4, seed=3), torch.tensor([0, 1, 2, 3])
    alphas = {"shift_x": torch.tensor([3.0, -2.0, 0.0, 5.0]), "color": torch.rand(4, 3) - 0.5}
    sum(walk_losses(G, walks, z, y, alphas).values()).backward()
    assert all(not p.requires_grad and p.grad is None for p in G.parameters())
    assert walks.w["shift_x"].grad.abs().sum() > 0
    assert walks.w["color"].grad.abs().sum() > 0


def test_target_pass_runs_without_grad(G):
    modes = []
    handle = G.register_forward_hook(lambda module, inputs, output: modes.append(torch.is_grad_enabled()))
    try:
        walks = init_walks(G, ["rotate", "zoom", "color"])
        z, y = G.sample_z(2), torch.tensor([0, 1])
        walk_losses(G, walks, z, y, {"rotate": torch.zeros(2), "zoom": torch.ones(2), "color": torch.zeros(2, 3)})
    finally:
        handle.remove()
    assert modes == [False, True]  # one target pass for three transforms, then one walk pass


def test_learn_walks_leaves_generator_unchanged(G):
    before = {k: v.clone() for k, v in G.state_dict().items()}
    learn_walks(G, ["zoom"], steps=3, batch_size=2)
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not G.training
    assert G.truncation == 1.0


def test_learn_walks_restores_truncation(G):
    learn_walks(G, ["color"], steps=1, batch_size=2, truncation=0.5)
    assert G.truncation == 1.0


@pytest.mark.parametrize("walk_type", ["linear", "per_class", "nonlinear"])
def test_save_load_roundtrip(G, tmp_path, walk_type):
    walks = learn_walks(G, ["rotate", "color"], steps=2, batch_size=2, walk_type=walk_type)
    path = save_walks(walks, tmp_path / "walks.pt")
    loaded = load_walks(path, G)
    z, y = G.sample_z(3, seed=5), torch.tensor([1, 4, 9])
    alphas = {"rotate": torch.tensor([10.0, -30.0, 0.0]), "color": torch.full((3, 3), 0.2)}
    with torch.no_grad():
        assert torch.allclose(loaded.shift(z, y, alphas), walks.shift(z, y, alphas))
    assert loaded.meta == json.loads(json.dumps(walks.meta))
    assert loaded.walk_type == walk_type


def test_saved_walks_are_plain_tensors_and_json(G, tmp_path):
    walks = learn_walks(G, ["shift_y"], steps=2, batch_size=2, seed=7)
    save_walks(walks, tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert set(state["state"]) == {"w.shift_y"}
    meta = json.loads((tmp_path / "w.json").read_text())
    assert meta["generator_id"] == G.generator_id
    assert meta["generator_config"] == json.loads(json.dumps(G.config))
    assert meta["transforms"] == ["shift_y"]
    assert meta["steps"] == 2
    assert meta["seed"] == 7
    assert meta["alpha_distribution"]["shift_y"]["max"] == 16.0
    assert set(meta["final_loss"]) == {"shift_y"}


def test_load_walks_other_generator_fails(G, tmp_path):
    save_walks(learn_walks(G, ["color"], steps=1, batch_size=2), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="learned for generator 'biggan-deep-32-random-0'"):
        load_walks(tmp_path / "w.pt", random_biggan(32, seed=1))
    with pytest.raises(ValueError, match="learned for generator"):
        load_walks(tmp_path / "w.pt", LinearGenerator())


def test_load_walks_missing_files(G, tmp_path):
    save_walks(learn_walks(G, ["color"], steps=1, batch_size=2), tmp_path / "w.pt")
    (tmp_path / "w.json").unlink()
    with pytest.raises(FileNotFoundError, match="w.json"):
        load_walks(tmp_path / "w.pt", G)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_walks(tmp_path / "nothing.pt", G)


def test_nonfinite_loss_names_step(tmp_path):
    # Each step calls the generator twice (target, walk), so call 5 is the target pass of step 2.
    G = LinearGenerator(nan_from=5)
    with pytest.raises(FloatingPointError, match="at step 2"):
        learn_walks(G, ["color", "shift_x"], steps=5, batch_size=2, out_dir=tmp_path, ckpt_every=1)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1]
    assert torch_load(tmp_path / "checkpoint.pt")["step"] == 2


def test_resume_equals_uninterrupted(tmp_path):
    full = learn_walks(LinearGenerator(), ["color", "rotate"], steps=6, batch_size=3, ckpt_every=2,
                       out_dir=tmp_path / "full")
    crashing = LinearGenerator(fail_at=9)  # the target pass of step 4, after the checkpoint at step 4
    with pytest.raises(RuntimeError, match="simulated crash"):
        learn_walks(crashing, ["color", "rotate"], steps=6, batch_size=3, ckpt_every=2, out_dir=tmp_path / "cut")
    assert torch_load(tmp_path / "cut" / "checkpoint.pt")["step"] == 4
    crashing.fail_at = None
    resumed = learn_walks(crashing, ["color", "rotate"], steps=6, batch_size=3, ckpt_every=2, out_dir=tmp_path / "cut")
    for name in ("color", "rotate"):
        assert torch.equal(resumed.w[name], full.w[name])
    assert [r["step"] for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl")] == list(range(6))
    assert read_jsonl(tmp_path / "cut" / "metrics.jsonl") == read_jsonl(tmp_path / "full" / "metrics.jsonl")


def test_resume_continues_to_more_steps(tmp_path):
    learn_walks(LinearGenerator(), ["zoom"], steps=3, batch_size=2, out_dir=tmp_path / "a")
    longer = learn_walks(LinearGenerator(), ["zoom"], steps=5, batch_size=2, out_dir=tmp_path / "a")
    direct = learn_walks(LinearGenerator(), ["zoom"], steps=5, batch_size=2, out_dir=tmp_path / "b")
    assert torch.equal(longer.w["zoom"], direct.w["zoom"])
    assert load_walks(tmp_path / "a" / "walks.pt").meta["steps"] == 5


def test_resume_beyond_requested_steps_fails(tmp_path):
    learn_walks(LinearGenerator(), ["zoom"], steps=4, batch_size=2, out_dir=tmp_path)
    with pytest.raises(ValueError, match="at step 4, beyond steps=2"):
        learn_walks(LinearGenerator(), ["zoom"], steps=2, batch_size=2, out_dir=tmp_path)


def test_resume_with_other_settings_fails(tmp_path):
    learn_walks(LinearGenerator(), ["zoom"], steps=2, batch_size=2, out_dir=tmp_path)
    with pytest.raises(ValueError, match="other settings \\(lr\\)"):
        learn_walks(LinearGenerator(), ["zoom"], steps=4, batch_size=2, lr=0.5, out_dir=tmp_path)
    with pytest.raises(ValueError, match="generator_config, generator_id"):
        learn_walks(LinearGenerator(seed=1), ["zoom"], steps=4, batch_size=2, out_dir=tmp_path)


def test_steerability_walk_beats_baseline(G):
    walks = learn_walks(G, ["color"], steps=30, batch_size=8, lr=0.02)
    df = steerability_table(G, walks, n_z=16, batch_size=16)
    assert list(df.columns) == ["transform", "alpha", "walk_error", "baseline_error", "achieved_alpha"]
    assert df["alpha"].tolist() == default_alphas("color", 32)
    assert (df.walk_error < df.baseline_error).any()
    neutral = df[df.alpha == 0.0].iloc[0]
    assert neutral.walk_error == pytest.approx(neutral.baseline_error, abs=1e-7)
    assert neutral.achieved_alpha == pytest.approx(0.0, abs=1e-9)
    strongest = df[df.alpha == 0.5].iloc[0]
    assert 0 < strongest.achieved_alpha <= 0.75  # the walk moves colour the requested way, at most 1.5 x


def test_steerability_seed_selects_samples(G):
    walks = init_walks(G, ["color"])
    a = steerability_table(G, walks, alphas={"color": [0.25]}, n_z=4, seed=1)
    b = steerability_table(G, walks, alphas={"color": [0.25]}, n_z=4, seed=2)
    assert a.baseline_error.iloc[0] == pytest.approx(0.0625, rel=1e-5)  # colour offset 0.25 on every pixel
    assert a.walk_error.iloc[0] != b.walk_error.iloc[0]


def test_fine_grid_chunks_give_same_errors(G):
    from steernb.steer import _batch_errors
    walks = init_walks(G, ["rotate"])
    z, y = G.sample_z(3, seed=4), torch.tensor([0, 1, 2])
    with torch.no_grad():
        x = G(z, y)
        whole = _batch_errors(G, walks, "rotate", z, y, x, [-20.0, 0.0, 30.0], [-40.0, -10.0, 0.0, 10.0, 40.0])
        chunked = _batch_errors(G, walks, "rotate", z, y, x, [-20.0, 0.0, 30.0], [-40.0, -10.0, 0.0, 10.0, 40.0], max_images=4)
    assert whole.shape == (3, 7)
    assert torch.allclose(whole, chunked)


def test_report_writers(G, tmp_path):
    walks = learn_walks(G, ["shift_x", "zoom"], steps=2, batch_size=2)
    df = steerability_table(G, walks, n_z=4)
    csv_path, achieved_path = write_steerability(df, tmp_path / "reports")
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["transform", "alpha", "walk_error", "baseline_error"]
    assert len(table) == 18
    assert list(pd.read_csv(achieved_path).columns) == ["transform", "alpha", "achieved_alpha"]
    assert plot_steerability(df, tmp_path / "s.png").stat().st_size > 1000
    assert plot_achieved_alpha(df, tmp_path / "a.png").stat().st_size > 1000
    grids = write_walk_grids(G, walks, tmp_path / "grids", classes=[3, 7], alphas={"zoom": [0.5, 1.0, 2.0]})
    assert [p.name for p in grids] == ["steer_shift_x.png", "steer_zoom.png"]


def test_joint_mode_logs_one_loss(tmp_path):
    walks = learn_walks(LinearGenerator(), ["rotate", "shift_x", "color"], steps=3, batch_size=2, joint=True,
                        out_dir=tmp_path)
    record = read_jsonl(tmp_path / "metrics.jsonl")[-1]
    assert set(record) == {"step", "loss", "loss/joint"}
    assert set(walks.w) == {"rotate", "shift_x", "color"}
    assert walks.meta["joint"] is True


def test_joint_mode_loss_falls():
    G = LinearGenerator()
    walks = learn_walks(G, ["color", "zoom"], steps=1, batch_size=16, joint=True)
    z, y = G.sample_z(16, seed=11), torch.randint(3, (16,), generator=torch.Generator().manual_seed(0))
    alphas = {"color": torch.rand(16, 3) * 0.4 - 0.2, "zoom": torch.ones(16)}
    with torch.no_grad(): before = walk_losses(G, walks, z, y, alphas, joint=True)["joint"]
    trained = learn_walks(G, ["color", "zoom"], steps=40, batch_size=16, lr=0.05, joint=True)
    with torch.no_grad(): after = walk_losses(G, trained, z, y, alphas, joint=True)["joint"]
    assert after < before


def test_per_class_walks_train_only_sampled_classes():
    G = LinearGenerator()
    start = init_walks(G, ["color"], "per_class")
    walks = learn_walks(G, ["color"], steps=3, batch_size=2, walk_type="per_class", classes=[1])
    assert torch.equal(walks.w["color"][0], start.w["color"][0])
    assert torch.equal(walks.w["color"][2], start.w["color"][2])
    assert not torch.equal(walks.w["color"][1], start.w["color"][1])


def test_nonlinear_walk_keeps_norm_and_learns(G):
    walks = learn_walks(G, ["color"], steps=25, batch_size=8, lr=0.01, walk_type="nonlinear")
    z, y = G.sample_z(4, seed=2), torch.arange(4)
    with torch.no_grad():
        moved = walks.shift(z, y, {"color": torch.full((4, 3), 0.3)})
    assert torch.allclose(moved.norm(dim=1), z.norm(dim=1), rtol=1e-4)
    assert not torch.allclose(moved, z)
    assert set(walks.w) == set()
    assert set(walks.nets) == {"color"}


def test_embedded_gan_architecture(tmp_path):
    config = gan_config("smoke")
    torch.manual_seed(0)
    G = EmbeddedGenerator(ConditionalGenerator(config["z_dim"], config["g_channels"], config["num_classes"]), config)
    walks = learn_walks(G, ["shift_y", "color"], steps=3, batch_size=4, out_dir=tmp_path)
    loaded = load_walks(tmp_path / "walks.pt", G)
    assert torch.equal(loaded.w["shift_y"], walks.w["shift_y"])
    assert loaded.meta["generator_id"].startswith("embedded-gan-smoke-")


def test_amp_path_runs_on_cpu():
    walks = learn_walks(LinearGenerator(), ["color"], steps=2, batch_size=2, amp=True)
    assert torch.isfinite(walks.w["color"]).all()
    assert np.isfinite(walks.meta["final_loss"]["color"])


@pytest.mark.parametrize("kwargs, message", [
    ({"walk_type": "curved"}, "walk_type='curved'"),
    ({"transforms": []}, "transforms is empty"),
    ({"transforms": ["color", "color"]}, "each transform may appear once"),
    ({"transforms": ["spin"]}, "unknown transform 'spin'"),
    ({"truncation": 0.0}, "truncation=0.0 is invalid"),
    ({"classes": [0, 3]}, "classes=\\[0, 3\\] is invalid"),
    ({"steps": -1}, "steps=-1 is invalid"),
    ({"batch_size": 0}, "batch_size=0 is invalid"),
    ({"lr": 0.0}, "lr=0.0 is invalid"),
])
def test_learn_walks_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        learn_walks(LinearGenerator(), **({"transforms": ["color"], "steps": 1} | kwargs))


def test_shift_bad_inputs():
    G = LinearGenerator()
    walks = init_walks(G, ["color"], "per_class")
    z = G.sample_z(2)
    with pytest.raises(ValueError, match="no walk for transform 'zoom'"):
        walks.shift(z, torch.tensor([0, 1]), {"zoom": torch.ones(2)})
    with pytest.raises(ValueError, match="class indices in \\[0, 3\\)"):
        walks.shift(z, torch.tensor([0, 5]), {"color": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="3 rows but z has 2"):
        walks.shift(z, torch.tensor([0, 1]), {"color": torch.zeros(3, 3)})
