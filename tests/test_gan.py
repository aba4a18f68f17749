import copy

import pytest
import torch

import steernb.gan as gan
from steernb.core import cache_dir, torch_load, torch_save
from steernb.data import ImageSet, load_mnist5k
from steernb.gan import (GAN_PRESETS, config_hash, embedded_gan, gan_config, load_embedded_gan,
                         save_embedded_gan, train_gan)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    "Train the smoke preset once through `embedded_gan`; return the generator and its cache root."
    root = tmp_path_factory.mktemp("gan-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEERNB_CACHE", str(root))
        G = embedded_gan("smoke", seed=0)
    return G, root


def _folder(G):
    return cache_dir("gan", f"smoke-{config_hash(G.config['gan'])}")


def _interrupt_at(monkeypatch, step_to_fail):
    "Make the training loop raise KeyboardInterrupt when it reaches step `step_to_fail`."
    real_step = gan._train_step

    def step(nets, opts, x, y, config, step, rng):
        if step == step_to_fail: raise KeyboardInterrupt
        return real_step(nets, opts, x, y, config, step, rng)
    monkeypatch.setattr(gan, "_train_step", step)


def test_smoke_images_finite_in_range(smoke):
    G, _ = smoke
    x = G(G.sample_z(30, seed=2), torch.arange(30) % 10)
    assert x.shape == (30, 3, 32, 32)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert x.min() >= -1
    assert x.max() <= 1


def test_resume_equals_uninterrupted(smoke, tmp_path, monkeypatch):
    G, _ = smoke
    every = GAN_PRESETS["smoke"]["ckpt_every"]
    _interrupt_at(monkeypatch, every + 5)
    with pytest.raises(KeyboardInterrupt):
        train_gan(load_mnist5k("train"), "smoke", seed=0, ckpt_dir=tmp_path)
    assert torch_load(tmp_path / "training.pt")["step"] == every
    assert not (tmp_path / "generator.pt").exists()

    monkeypatch.undo()
    resumed = train_gan(load_mnist5k("train"), "smoke", seed=0, ckpt_dir=tmp_path)
    assert torch_load(tmp_path / "generator.pt")["stats"]["resumed_at"] == every
    expected, got = G.net.state_dict(), resumed.net.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert resumed.generator_id == G.generator_id


def test_cache_reuse_trains_nothing(smoke, monkeypatch):
    G, root = smoke
    monkeypatch.setenv("STEERNB_CACHE", str(root))
    path = _folder(G) / "generator.pt"
    before = path.stat().st_mtime_ns
    _interrupt_at(monkeypatch, 0)
    again = embedded_gan("smoke", seed=0)
    assert again.generator_id == G.generator_id
    assert path.stat().st_mtime_ns == before


def test_interface_frozen_eval_grad(smoke):
    G, _ = smoke
    assert not G.training
    assert not G.net.training
    assert not any(p.requires_grad for p in G.parameters())
    G.train()
    assert not G.net.training
    z = G.sample_z(3, seed=0).requires_grad_()
    G(z, torch.tensor([1, 2, 3])).square().sum().backward()
    assert z.grad is not None
    assert z.grad.abs().sum() > 0
    assert all(p.grad is None for p in G.parameters())


def test_interface_batch_independent(smoke):
    G, _ = smoke
    z, y = G.sample_z(8, seed=5), torch.arange(8)
    batch = G(z, y)
    for i in (0, 7):
        torch.testing.assert_close(G(z[i:i + 1], y[i:i + 1]), batch[i:i + 1], atol=1e-5, rtol=0)


def test_interface_bad_inputs(smoke):
    G, _ = smoke
    z = G.sample_z(2)
    with pytest.raises(ValueError, match="class index 10 is out of range"): G(z, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="class index -1 is out of range"): G(z, -1)
    with pytest.raises(ValueError, match=r"expected \(n, 32\)"): G(torch.zeros(2, 31), 0)
    with pytest.raises(ValueError, match="truncation"): G.sample_z(2, truncation=1.5)
    with pytest.raises(ValueError, match="truncation"): G.sample_z(2, truncation=0.0)
    assert G.sample_z(4, truncation=0.5).abs().max() <= 1.0


def test_generator_id_tracks_weights(smoke):
    G, _ = smoke
    other = gan.EmbeddedGenerator(gan.ConditionalGenerator(32, 8), G.config["gan"])
    assert other.generator_id != G.generator_id
    assert other.config["gan"] == G.config["gan"]
    assert other.config["weights_sha256"] != G.config["weights_sha256"]


def test_unknown_preset_and_setting():
    with pytest.raises(ValueError, match="valid presets: smoke, mnist5k"): embedded_gan("imagenet")
    with pytest.raises(ValueError, match="unknown GAN setting"): gan_config("smoke", width=3)
    with pytest.raises(ValueError, match="seed"): gan_config("smoke", seed=-1)


def test_wrong_data_rejected():
    real = load_mnist5k("train")
    small = ImageSet(real.images[:, :, :28, :28].contiguous(), real.labels, real.classes)
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"): train_gan(small, "smoke")
    with pytest.raises(ValueError, match="uint8"): train_gan(type("D", (), {"images": real.float_images(), "labels": real.labels})(), "smoke")
    labels = real.labels.clone()
    labels[0] = 10
    wide = ImageSet(real.images, labels, real.classes + ["extra"])
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\)"): train_gan(wide, "smoke")


def test_corrupt_generator_file(smoke, tmp_path):
    path = tmp_path / "generator.pt"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="Delete .*generator.pt"): load_embedded_gan(path)
    save_embedded_gan(smoke[0], path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable GAN checkpoint"): load_embedded_gan(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_gan"): load_embedded_gan(tmp_path / "absent.pt")


def test_mismatched_generator_file(smoke, tmp_path):
    G, _ = smoke
    path = save_embedded_gan(G, tmp_path / "generator.pt")
    ckpt = torch_load(path)
    ckpt["config"]["g_channels"] = 16
    torch_save(ckpt, path)
    with pytest.raises(ValueError, match="do not match the configuration"): load_embedded_gan(path)
    ckpt = torch_load(save_embedded_gan(G, path))
    del ckpt["state_dict"]["fc.bias"]
    torch_save(ckpt, path)
    with pytest.raises(ValueError, match="fc.bias"): load_embedded_gan(path)


def test_training_checkpoint_of_other_config(tmp_path, monkeypatch):
    _interrupt_at(monkeypatch, GAN_PRESETS["smoke"]["ckpt_every"])
    with pytest.raises(KeyboardInterrupt):
        train_gan(load_mnist5k("train"), "smoke", seed=0, ckpt_dir=tmp_path)
    with pytest.raises(ValueError, match="differs in seed"):
        train_gan(load_mnist5k("train"), "smoke", seed=1, ckpt_dir=tmp_path)
    (tmp_path / "training.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="Delete .*training.pt"):
        train_gan(load_mnist5k("train"), "smoke", seed=0, ckpt_dir=tmp_path)


def test_amp_and_channels_last_on_cpu(smoke):
    G, _ = smoke
    fast = gan.EmbeddedGenerator(copy.deepcopy(G.net), G.config["gan"], amp=True, channels_last=True)
    z, y = G.sample_z(4, seed=1), torch.arange(4)
    x = fast(z, y)
    assert x.dtype == torch.float32
    assert x.is_contiguous()
    torch.testing.assert_close(x, G(z, y), atol=0.1, rtol=0)
