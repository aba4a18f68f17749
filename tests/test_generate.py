import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from steernb.generate import (GenerationPlan, cpu_block_rows, class_table, generate_dataset, image_seed,
                              load_generated, read_png, draw_z, walks_sha256, write_grids)
from steernb.generators import load_biggan, random_biggan, save_biggan_folder
from steernb.steer import init_walks, load_walks, save_walks
from steernb.transforms import TRANSFORM_NAMES, get_transform

torch.set_num_threads(1)  # thread counts can change CPU kernels, and subprocesses run with one thread

WORKER_SRC = textwrap.dedent('''
    import json, sys
    from steernb.generators import load_biggan
    from steernb.generate import generate_dataset
    from steernb.steer import load_walks
    G = load_biggan(sys.argv[1])
    generate_dataset(G, load_walks(sys.argv[2], G), sys.argv[3], **json.loads(sys.argv[4]))
''')


@pytest.fixture(scope="module")
def G():
    return random_biggan(32, seed=0)


def random_walks(G, transforms=TRANSFORM_NAMES, seed=0):
    "Return linear walks with random directions, large enough to change the images."
    return init_walks(G, transforms, seed=seed, init_std=0.5)


@pytest.fixture(scope="module")
def walks(G):
    return random_walks(G)


@pytest.fixture
def worker(tmp_path, G):
    "Return a builder of command lines that run generate_dataset in new processes, and the generator and walks they load."
    folder = save_biggan_folder(G, tmp_path / "tiny-biggan")
    G_loaded = load_biggan(folder)
    walks_path = save_walks(random_walks(G_loaded), tmp_path / "walks.pt")
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SRC)

    def command(out_dir, torchrun=0, **kwargs):
        launcher = [sys.executable] if not torchrun else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
        return launcher + [str(script), str(folder), str(walks_path), str(out_dir), json.dumps(kwargs)]
    return command, G_loaded, load_walks(walks_path, G_loaded)


def subprocess_env():
    return dict(os.environ, OMP_NUM_THREADS="1", STEERNB_PROGRESS="0")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest_rows(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as f: return list(csv.DictReader(f))


def test_layout_and_manifest(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "set", n_per_class=2, classes=[3, 5, 7], class_names=["a", "b", "c"])
    rows = manifest_rows(out)
    assert [int(r["index"]) for r in rows] == list(range(6))
    assert [r["class_name"] for r in rows] == ["a", "b", "c"] * 2
    assert [r["file"] for r in rows] == [f"{'abc'[i % 3]}/{i}.png" for i in range(6)]
    assert sorted(files_of(out)) == sorted(["args.json", "manifest.csv"] + [r["file"] for r in rows])
    first = rows[0]
    assert int(first["seed"]) == image_seed(0, 0)
    assert first["transforms"] == "+".join(TRANSFORM_NAMES)
    alphas = json.loads(first["alphas"])
    assert sorted(alphas) == sorted(TRANSFORM_NAMES)
    assert len(alphas["color"]) == 3
    assert first["generator_id"] == G.generator_id
    assert float(first["truncation"]) == 1.0
    image = read_png(out / first["file"])
    assert image.shape == (3, 32, 32)
    assert image.dtype == torch.uint8


def test_images_match_direct_generation(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[4, 6], truncation=0.5, seed=3)
    plan = GenerationPlan([4, 6], ["4", "6"], list(TRANSFORM_NAMES), 1, G.z_dim, G.resolution, G.generator_id, 0.5, 3)
    z, alphas, record = plan.image(1)
    assert record["class_name"] == "6"
    assert G.truncation == 1.0
    G.truncation = 0.5  # BigGAN's batch-norm statistics depend on the truncation
    try:
        with torch.no_grad():
            rows = cpu_block_rows(G)
            y = torch.full((rows,), 6)
            shifted = walks.shift(z.expand(rows, -1), y, {k: v.expand(rows, *v.shape) for k, v in alphas.items()})
            expected = ((G(shifted, y)[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    finally: G.truncation = 1.0
    assert torch.equal(read_png(out / "6" / "1.png"), expected)


def test_same_images_for_any_batch_size(G, walks, tmp_path):
    a = generate_dataset(G, walks, tmp_path / "a", n_per_class=3, batch_size=64)
    b = generate_dataset(G, walks, tmp_path / "b", n_per_class=3, batch_size=3)
    assert files_of(a) == files_of(b)


def test_seed_changes_images(G, walks, tmp_path):
    a = load_generated(generate_dataset(G, walks, tmp_path / "a", n_per_class=1, classes=[0, 1], seed=0))
    b = load_generated(generate_dataset(G, walks, tmp_path / "b", n_per_class=1, classes=[0, 1], seed=1))
    assert not torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)


def test_truncation_scales_z():
    z = draw_z(1000, 0.25, torch.Generator().manual_seed(1))
    assert z.abs().max() <= 0.5
    assert z.abs().max() > 0.4


def test_unsteered_control_uses_neutral_alphas(G, walks, tmp_path):
    steered = generate_dataset(G, walks, tmp_path / "s", n_per_class=1, classes=[1, 2])
    control = generate_dataset(G, walks, tmp_path / "u", n_per_class=1, classes=[1, 2], unsteered=True)
    rows_s, rows_u = manifest_rows(steered), manifest_rows(control)
    assert [r["seed"] for r in rows_s] == [r["seed"] for r in rows_u]
    for row in rows_u:
        assert row["transforms"] == ""
        alphas = json.loads(row["alphas"])
        for name in TRANSFORM_NAMES:
            assert torch.equal(torch.tensor(alphas[name]), torch.full_like(torch.tensor(alphas[name]), get_transform(name).neutral))
    plan = GenerationPlan([1, 2], ["1", "2"], list(TRANSFORM_NAMES), 1, G.z_dim, G.resolution, G.generator_id)
    z = plan.image(0)[0]
    rows = cpu_block_rows(G)
    with torch.no_grad(): plain = G(z.expand(rows, -1), torch.full((rows,), 1))[0]
    assert torch.equal(read_png(control / "1" / "0.png"), ((plain.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    assert not torch.equal(read_png(control / "1" / "0.png"), read_png(steered / "1" / "0.png"))


def test_walks_none_gives_plain_samples(G, walks, tmp_path):
    a = generate_dataset(G, None, tmp_path / "a", n_per_class=1, classes=[1], unsteered=True)
    b = generate_dataset(G, walks, tmp_path / "b", n_per_class=1, classes=[1], unsteered=True)
    assert torch.equal(read_png(a / "1" / "0.png"), read_png(b / "1" / "0.png"))


def test_mode_one_steers_one_transform(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "one", n_per_class=4, classes=[0, 1, 2], mode="one")
    chosen = []
    for row in manifest_rows(out):
        names = row["transforms"].split("+")
        assert len(names) == 1
        chosen += names
        alphas = json.loads(row["alphas"])
        for name in TRANSFORM_NAMES:
            if name != names[0]: assert torch.all(torch.tensor(alphas[name]) == get_transform(name).neutral)
    assert len(set(chosen)) >= 3


def test_wordnet_ids_name_the_folders(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "w", n_per_class=1, classes=["n01440764", "n01484850"])
    rows = manifest_rows(out)
    assert [r["class_name"] for r in rows] == ["n01440764", "n01484850"]
    assert json.loads((out / "args.json").read_text())["classes"] == [0, 2]
    assert load_generated(out).classes == ["n01440764", "n01484850"]


def test_load_generated_returns_imageset(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "set", n_per_class=2, classes=[2, 9])
    ds = load_generated(out)
    assert ds.images.shape == (4, 3, 32, 32)
    assert ds.labels.tolist() == [0, 1, 0, 1]
    assert ds.classes == ["2", "9"]
    assert torch.equal(ds.images[3], read_png(out / "9" / "3.png"))
    assert load_generated(out, size=16).images.shape == (4, 3, 16, 16)


def test_load_generated_rejects_damaged_file(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[2, 9])
    (out / "9" / "1.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="unreadable"), pytest.raises(ValueError, match="1 images of .* are unreadable"):
        load_generated(out)


def test_load_generated_needs_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="run generate_dataset with the same arguments"):
        load_generated(tmp_path / "missing")


def test_other_arguments_raise(G, walks, tmp_path):
    generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[0])
    with pytest.raises(ValueError, match=r"differ in \['seed'\].*choose another folder or delete it"):
        generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[0], seed=1)
    other_walks = random_walks(G, seed=1)
    with pytest.raises(ValueError, match="walks_sha256"):
        generate_dataset(G, other_walks, tmp_path / "set", n_per_class=1, classes=[0])
    with pytest.raises(ValueError, match="generator_config"):
        generate_dataset(random_biggan(32, seed=1), walks, tmp_path / "set", n_per_class=1, classes=[0])


def test_batch_size_change_resumes(G, walks, tmp_path):
    generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[0, 1], batch_size=2)
    (tmp_path / "set" / "1" / "1.png").unlink()
    (tmp_path / "set" / "manifest.csv").unlink()
    generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[0, 1], batch_size=5)
    assert (tmp_path / "set" / "1" / "1.png").exists()
    assert len(manifest_rows(tmp_path / "set")) == 2


def test_foreign_folder_raises(G, walks, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="has no args.json.*choose another folder or delete it"):
        generate_dataset(G, walks, tmp_path / "photos", n_per_class=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_per_class=0), "n_per_class=0"),
    (dict(n_per_class=1.5), "n_per_class=1.5"),
    (dict(n_per_class=1, classes=[10]), r"classes \[10\]"),
    (dict(n_per_class=1, classes=[]), "classes is empty"),
    (dict(n_per_class=1, classes=[0, 1], class_names=["a", "a"]), "distinct names"),
    (dict(n_per_class=1, classes=[0], class_names=["../x"]), "not valid folder names"),
    (dict(n_per_class=1, truncation=0.0), "truncation=0.0"),
    (dict(n_per_class=1, truncation="1"), "truncation='1'"),
    (dict(n_per_class=1, seed=-1), "seed=-1"),
    (dict(n_per_class=1, mode="some"), "mode='some'"),
    (dict(n_per_class=1, batch_size=0), "batch_size=0"),
    (dict(n_per_class=1, classes=["n99999999"]), "not one of the 1,000 ImageNet-1k WordNet ids"),
])
def test_bad_arguments_raise(G, walks, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_dataset(G, walks, tmp_path / "set", **kwargs)
    assert not (tmp_path / "set").exists()


def test_walks_none_needs_unsteered(G, tmp_path):
    with pytest.raises(ValueError, match="unsteered=True"):
        generate_dataset(G, None, tmp_path / "set", n_per_class=1)


def test_partial_files_are_removed(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[0, 1])
    (out / "1" / "1.png").unlink()
    (out / "1" / ".1.png.abc123.tmp").write_bytes(b"\x89PNG half")
    (out / "manifest.csv").unlink()
    (out / ".manifest.csv.def456.tmp").write_text("index,la")
    generate_dataset(G, walks, out, n_per_class=1, classes=[0, 1])
    assert sorted(p.name for p in (out / "1").iterdir()) == ["1.png"]
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "args.json", "manifest.csv"]


def test_kill_while_writing_args_resumes(G, walks, tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / ".args.json.xyz.tmp").write_text('{"cla')
    generate_dataset(G, walks, tmp_path / "set", n_per_class=1, classes=[0])
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["0", "args.json", "manifest.csv"]


def test_resume_after_sigkill(worker, tmp_path):
    command, G_loaded, walks = worker
    proc = subprocess.Popen(command(tmp_path / "killed", n_per_class=6, batch_size=4), env=subprocess_env())
    deadline = time.time() + 120
    while len(list((tmp_path / "killed").rglob("*.png"))) < 8 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "killed" / "manifest.csv").exists()
    done_before = len(list((tmp_path / "killed").rglob("*.png")))
    assert 8 <= done_before < 60

    generate_dataset(G_loaded, walks, tmp_path / "killed", n_per_class=6, batch_size=7)
    generate_dataset(G_loaded, walks, tmp_path / "reference", n_per_class=6, batch_size=64)
    killed, reference = files_of(tmp_path / "killed"), files_of(tmp_path / "reference")
    assert sorted(killed) == sorted(reference)
    assert killed == reference


def test_torchrun_two_processes_match_one(worker, tmp_path):
    command, G_loaded, walks = worker
    kwargs = dict(n_per_class=3, batch_size=4)
    generate_dataset(G_loaded, walks, tmp_path / "one", **kwargs)
    result = subprocess.run(command(tmp_path / "two", torchrun=2, **kwargs), env=subprocess_env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0: wrote 15 images" in result.stdout
    assert "rank 1: wrote 15 images" in result.stdout
    assert files_of(tmp_path / "two") == files_of(tmp_path / "one")


def test_class_table_draws_every_class(G, walks, tmp_path):
    out = generate_dataset(G, walks, tmp_path / "set", n_per_class=2, classes=[0, 1, 2])
    generated = load_generated(out)
    real = generated.subset([1, 0])  # any images work as stand-ins for the real ones
    small = read_png(class_table(generated, tmp_path / "g1.png", real=real, n_generated=2, max_classes=1))
    large = read_png(class_table(generated, tmp_path / "g3.png", real=real, n_generated=2))
    assert large.shape[1] > 2.5 * small.shape[1]
    assert abs(large.shape[2] - small.shape[2]) < 10


def test_write_grids(G, tmp_path):
    two = random_walks(G, ["shift_y", "color"])
    generated = load_generated(generate_dataset(G, two, tmp_path / "set", n_per_class=1, classes=[0, 1]))
    paths = write_grids(G, two, tmp_path / "grids", generated=generated, classes=[0], num_alphas=3)
    assert [p.name for p in paths] == ["class_table.png", "steer_shift_y.png", "steer_color.png"]
    assert all(p.parent == tmp_path / "grids" for p in paths)
    assert read_png(paths[0]).shape[0] == 3


def test_walks_digest_covers_networks(G):
    a, b = init_walks(G, ["zoom"], walk_type="nonlinear", seed=0), init_walks(G, ["zoom"], walk_type="nonlinear", seed=1)
    assert walks_sha256(a) != walks_sha256(b)
    assert walks_sha256(a) == walks_sha256(init_walks(G, ["zoom"], walk_type="nonlinear", seed=0))
