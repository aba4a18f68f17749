import copy
import json
import socket

import pytest
import torch
from pytorch_pretrained_biggan import BigGAN

from steernb.core import torch_load, torch_save
from steernb.generators import (BIGGAN_MODELS, BigGANGenerator, Generator, biggan_config, biggan_folders,
                                build_biggan, imagenet_index, imagenet_wnids, load_biggan, random_biggan,
                                save_biggan_folder, truncated_z)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return random_biggan(32, seed=0)


@pytest.fixture
def tiny_folder(tiny, tmp_path):
    return save_biggan_folder(tiny, tmp_path / "tiny")


def test_reload_gives_same_images(tiny, tiny_folder):
    G = load_biggan(tiny_folder)
    z = tiny.sample_z(4, seed=5)
    y = torch.tensor([0, 3, 6, 9])
    assert torch.equal(G(z, y), tiny(z, y))
    assert G.config["biggan"] == tiny.config["biggan"]
    assert G.generator_id == "tiny"


def test_load_reports_missing_key(tiny_folder):
    state = torch_load(tiny_folder / "pytorch_model.bin")
    del state["generator.bn.running_means"]
    torch_save(state, tiny_folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="missing keys: generator.bn.running_means"):
        load_biggan(tiny_folder)


def test_load_reports_unexpected_key(tiny_folder):
    state = torch_load(tiny_folder / "pytorch_model.bin")
    state["generator.layers.9.conv_0.weight_orig"] = torch.zeros(3)
    torch_save(state, tiny_folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="unexpected keys: generator.layers.9.conv_0.weight_orig"):
        load_biggan(tiny_folder)


def test_load_rejects_other_configuration(tiny_folder):
    config = json.loads((tiny_folder / "config.json").read_text())
    config["channel_width"] = 8
    (tiny_folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"shape mismatch: generator.gen_z.bias \(1024,\) in the file, \(2048,\) in the model"):
        load_biggan(tiny_folder)


def test_load_rejects_invalid_config(tiny_folder):
    (tiny_folder / "config.json").write_text('{"output_dim": 32}')
    with pytest.raises(ValueError, match="missing fields .*channel_width"):
        load_biggan(tiny_folder)
    (tiny_folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_biggan(tiny_folder)


def test_load_accepts_pytorch_1_0_layout(tiny, tiny_folder):
    # PyTorch 1.0 saved each spectral-norm layer's normalised weight, no weight_v and no spectral-norm version.
    model = tiny.model
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if hasattr(module, "weight_v"):
            del state[f"{name}.weight_v"]
            state[f"{name}.weight"] = module.weight_orig / torch.dot(
                module.weight_u, module.weight_orig.flatten(1) @ module.weight_v)
    torch_save(state, tiny_folder / "pytorch_model.bin")
    G = load_biggan(tiny_folder)
    z = tiny.sample_z(2, seed=1)
    torch.testing.assert_close(G(z, [2, 8]), tiny(z, [2, 8]), atol=1e-4, rtol=0)


def test_missing_folder_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(tmp_path / "pkg"))
    with pytest.raises(FileNotFoundError) as info:
        load_biggan("biggan-deep-256")
    message = str(info.value)
    for folder in biggan_folders("biggan-deep-256"):
        assert str(folder) in message
    assert "config.json and pytorch_model.bin" in message
    assert "biggan-deep-256-pytorch_model.bin (save it as pytorch_model.bin)" in message
    assert "biggan-deep-256-config.json (save it as config.json)" in message


def test_partial_folder_names_missing_file(tiny_folder):
    (tiny_folder / "pytorch_model.bin").unlink()
    with pytest.raises(FileNotFoundError, match="tiny lacks pytorch_model.bin"):
        load_biggan(tiny_folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_biggan(tiny_folder / "nowhere")


def test_name_resolves_in_cache_order(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(tmp_path / "pkg"))
    monkeypatch.setenv("STEERNB_CACHE", str(tmp_path / "steernb"))
    save_biggan_folder(tiny, tmp_path / "steernb" / "biggan" / "biggan-deep-128")
    assert load_biggan("biggan-deep-128").generator_id == "biggan-deep-128"
    other = random_biggan(32, seed=4)
    save_biggan_folder(other, tmp_path / "pkg" / "biggan-deep-128")
    assert load_biggan("biggan-deep-128").config["weights"] != load_biggan(tmp_path / "steernb" / "biggan" / "biggan-deep-128").config["weights"]
    z = tiny.sample_z(1)
    assert torch.equal(load_biggan("biggan-deep-128")(z, 0), other(z, 0))


def test_load_makes_no_network_call(tiny_folder, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("load_biggan opened a network connection or called from_pretrained")
    monkeypatch.setattr(socket.socket, "connect", fail)
    monkeypatch.setattr(BigGAN, "from_pretrained", fail)
    assert load_biggan(tiny_folder).resolution == 32


def test_truncation_validation(tiny):
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="truncation="):
            tiny.sample_z(2, truncation=bad)
        with pytest.raises(ValueError, match="truncation="):
            tiny.truncation = bad
    assert tiny.truncation == 1.0


def test_class_index_out_of_range(tiny):
    z = tiny.sample_z(2)
    with pytest.raises(ValueError, match="class index 10 is out of range.*0 to 9"):
        tiny(z, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="class index -1 is out of range"):
        tiny(z, -1)
    with pytest.raises(ValueError, match=r"y has shape \(3,\), expected \(2,\)"):
        tiny(z, [0, 1, 2])


def test_wrong_z_shape(tiny):
    with pytest.raises(ValueError, match=r"z has shape \(16,\), expected \(n, 16\)"):
        tiny(torch.zeros(16), 0)
    with pytest.raises(ValueError, match=r"z has shape \(2, 15\)"):
        tiny(torch.zeros(2, 15), 0)
    with pytest.raises(ValueError, match="floating-point tensor"):
        tiny(torch.zeros(2, 16, dtype=torch.long), 0)


def test_batch_independence(tiny):
    z = tiny.sample_z(6, seed=3)
    y = torch.arange(6)
    x = tiny(z, y)
    torch.testing.assert_close(tiny(z[:1], y[:1]), x[:1], atol=1e-5, rtol=0)
    torch.testing.assert_close(tiny(z[3:], y[3:]), x[3:], atol=1e-5, rtol=0)


def test_gradients_reach_z_only(tiny):
    z = tiny.sample_z(2, seed=1).requires_grad_()
    tiny(z, [1, 2]).mean().backward()
    assert z.grad is not None
    assert z.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in tiny.parameters())
    assert all(p.grad is None for p in tiny.parameters())


def test_stays_in_eval_mode(tiny):
    tiny.train()
    assert not tiny.training
    assert not any(m.training for m in tiny.modules())


def test_sample_z_deterministic(tiny):
    a = tiny.sample_z(64, truncation=0.5, seed=11)
    assert torch.equal(a, tiny.sample_z(64, truncation=0.5, seed=11))
    assert not torch.equal(a, tiny.sample_z(64, truncation=0.5, seed=12))
    assert a.shape == (64, 16)
    assert a.dtype == torch.float32
    assert a.abs().max() <= 1.0


def test_sample_z_matches_package_sampler():
    from pytorch_pretrained_biggan import truncated_noise_sample
    expected = torch.from_numpy(truncated_noise_sample(batch_size=3, dim_z=128, truncation=0.4, seed=2))
    torch.testing.assert_close(truncated_z(3, 128, 0.4, seed=2), expected)


def test_trimmed_rgb_matches_full(tiny):
    z = tiny.sample_z(3, seed=4)
    y = torch.tensor([0, 5, 9])
    trimmed = tiny(z, y)
    tiny.trim_rgb = False
    try:
        full = tiny(z, y)
    finally:
        tiny.trim_rgb = True
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=0)
    assert tiny.model.generator.conv_to_rgb.keep_channels == 3


def test_matches_package_on_truncation_grid(tiny):
    package_model = BigGAN(tiny.model.config).eval()
    package_model.load_state_dict(tiny.model.state_dict())
    z = tiny.sample_z(2, truncation=0.4, seed=6)
    one_hot = torch.nn.functional.one_hot(torch.tensor([1, 7]), 10).float()
    tiny.truncation = 0.4
    try:
        with torch.no_grad():
            torch.testing.assert_close(tiny(z, [1, 7]), package_model(z, one_hot, 0.4), atol=1e-5, rtol=0)
            tiny.truncation = 0.405
            assert (tiny(z, [1, 7]) - package_model(z, one_hot, 0.405)).abs().max() > 1e-4
    finally:
        tiny.truncation = 1.0


def test_amp_and_channels_last_on_cpu(tiny_folder, tiny):
    z = tiny.sample_z(2, seed=9)
    plain = load_biggan(tiny_folder, channels_last=False)
    assert plain.model.generator.conv_to_rgb.weight_orig.is_contiguous()
    reference = plain(z, [3, 4])
    fast = load_biggan(tiny_folder, amp=True, channels_last=True)
    x = fast(z, [3, 4])
    assert x.dtype == torch.float32
    assert x.is_contiguous()
    torch.testing.assert_close(x, reference, atol=0.05, rtol=0)
    nhwc = load_biggan(tiny_folder)  # channels-last is the default
    assert nhwc.model.generator.conv_to_rgb.weight_orig.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc(z, [3, 4]), reference, atol=1e-5, rtol=0)


def test_deepcopy_keeps_behaviour(tiny):
    clone = copy.deepcopy(tiny)
    z = tiny.sample_z(2, seed=8)
    assert torch.equal(clone(z, [0, 1]), tiny(z, [0, 1]))
    assert clone.trim_rgb


def test_random_models_are_finite_and_seeded():
    G = random_biggan(32, seed=7)
    x = G(G.sample_z(4), [0, 1, 2, 3])
    assert x.isfinite().all()
    assert torch.equal(x, random_biggan(32, seed=7)(G.sample_z(4), [0, 1, 2, 3]))
    with pytest.raises(ValueError, match="resolution=64"):
        random_biggan(64)


def test_published_configurations():
    for name in BIGGAN_MODELS:
        resolution = int(name.rsplit("-", 1)[1])
        config = biggan_config(resolution)
        assert (config.output_dim, config.z_dim, config.num_classes) == (resolution, 128, 1000)
    model = build_biggan(biggan_config(128))
    assert sum(p.numel() for p in model.parameters()) > 50_000_000


def test_imagenet_index_default_classes():
    wnids = ("n01440764 n01484850 n01494475 n01531178 n01632777 n01665541 n01687978 n01695060 n01749939 "
             "n01775062 n01795545 n01818515 n01820546 n01824575 n01833805 n01914609 n01924916 n01930112 "
             "n01950731 n01978455 n01984695 n02007558 n02012849 n02018795 n02037110").split()
    expected = [0, 2, 4, 11, 29, 34, 42, 48, 64, 77, 80, 88, 90, 91, 94, 108, 110, 111, 115, 119, 123, 130,
                134, 138, 143]
    assert [imagenet_index(w) for w in wnids] == expected
    assert imagenet_index("n02085620") == 151
    assert len(set(imagenet_wnids())) == 1000


def test_imagenet_index_unknown():
    with pytest.raises(ValueError, match="'n00000000' is not one of the 1,000"):
        imagenet_index("n00000000")


def test_base_class_requires_synthesize():
    class Bare(Generator):
        def __init__(self):
            super().__init__(z_dim=2, num_classes=2, resolution=1, generator_id="bare", config={})
            self.freeze()

    with pytest.raises(NotImplementedError, match="Bare must implement synthesize"):
        Bare()(torch.zeros(1, 2), 0)


def test_generator_is_the_interface(tiny):
    assert isinstance(tiny, BigGANGenerator)
    assert isinstance(tiny, Generator)
    json.dumps(tiny.config)
    assert tiny.sample_z(1).device == tiny.device


def test_generator_adapts_package_model(tiny):
    model = BigGAN(tiny.model.config)
    model.load_state_dict(tiny.model.state_dict())
    G = BigGANGenerator(model, "package")
    assert G.trim_rgb
    z = tiny.sample_z(2, seed=3)
    torch.testing.assert_close(G(z, [1, 2]), tiny(z, [1, 2]), atol=1e-6, rtol=0)


def test_double_z_is_cast(tiny):
    z = tiny.sample_z(2, seed=3)
    torch.testing.assert_close(tiny(z.double(), [1, 2]), tiny(z, [1, 2]))
