"""steernb-run and the papermill templates: the smoke profile end to end, restarts, failures and parameter checks."""
import ast, json, os, signal, subprocess, sys, time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner
from papermill.cli import papermill as papermill_cli

from steernb.core import load_json
from steernb.runs import PROFILES, TEMPLATE_PARAMS, main, notebook_error

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "nbs" / "experiments"
CONDITIONS = ["original", "original+transform", "original+generated", "generated", "original+unsteered"]


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("STEERNB_PROGRESS", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("STEERNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


# --- templates --------------------------------------------------------------------------------------------

def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("template", sorted(TEMPLATE_PARAMS))
def test_template_parameters_cell(template):
    cells = code_cells(TEMPLATES / f"{template}.ipynb")
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert cells[0] is tagged[0]
    names = []
    for line in tagged[0].source.splitlines():
        assert "#" in line, f"parameter line without a comment: {line!r}"
        name = line.split("=")[0].strip()
        assert name.isupper(), name
        names.append(name)
    assert names == list(TEMPLATE_PARAMS[template])
    assert f'check_params("{template}", globals())' in cells[1].source
    assert f'save_metrics(P, "{template}"' in cells[-1].source


def test_template_cells_call_only_steernb():
    for path in TEMPLATES.glob("*.ipynb"):
        for cell in code_cells(path)[1:]:
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.ImportFrom):
                    assert node.module.split(".")[0] in ("steernb", "pathlib", "IPython"), (path.name, node.module)


# --- papermill parameter coercion on the train template ----------------------------------------------------

def prepared_train(tmp_path, *args):
    out = tmp_path / "prepared.ipynb"
    result = CliRunner().invoke(papermill_cli, [str(TEMPLATES / "train.ipynb"), str(out), "--prepare-only",
                                                "-p", "RUN_DIR", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("args", [["-p", "EPOCHS", "100"], ["-r", "EPOCHS", "100"], ["-p", "EPOCHS", "1e2"]],
                         ids=["int", "string", "float"])
def test_train_epochs_coerced(tmp_path, args):
    nb = nbformat.read(prepared_train(tmp_path, *args), as_version=4)
    check = next(i for i, c in enumerate(nb.cells) if "check_params(" in c.source)
    namespace = {}
    for cell in [c for c in nb.cells[:check + 1] if c.cell_type == "code"]:  # parameters, papermill's injected parameters, the check; 100 epochs of training is not the point
        exec(cell.source, namespace)
    params = load_json(tmp_path / "run" / "params.json")
    assert params["EPOCHS"] == 100 and isinstance(params["EPOCHS"], int)
    assert params["SCHEDULE_EPOCHS"] == 100
    assert params["TEMPLATE"] == "train"


@pytest.mark.parametrize("value", ["100.5", "0", "abc"])
def test_train_epochs_rejected(tmp_path, value):
    out = tmp_path / "out.ipynb"
    result = CliRunner().invoke(papermill_cli, [str(TEMPLATES / "train.ipynb"), str(out), "-k", "python3", "--no-progress-bar",
                                                "-p", "RUN_DIR", str(tmp_path / "run"), "-p", "EPOCHS", value])
    assert result.exit_code != 0
    error = notebook_error(out)
    assert error.startswith("ValueError: EPOCHS=")
    assert "is invalid: expected an integer >= 1" in error
    assert not (tmp_path / "run" / "params.json").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()


# --- the runner on fixture templates (no training): failures, dependencies, restarts ------------------------

def fixture_template(folder, name, params, body):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("\n".join(f"{p} = None  # fixture" for p in params), metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def fixture_templates(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    fixture_template(folder, "walks", TEMPLATE_PARAMS["walks"], 'raise RuntimeError("walks fixture failure")')
    for name, metrics in (("generate", "{}"), ("train", '{"top1": float(P["EPOCHS"]), "top5": 100.0}')):
        fixture_template(folder, name, TEMPLATE_PARAMS[name], "from steernb.runs import check_params, save_metrics\n"
                         f'P = check_params("{name}", globals())\nsave_metrics(P, "{name}", {metrics})')
    (folder / "report.ipynb").write_bytes((TEMPLATES / "report.ipynb").read_bytes())
    return folder


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_runner_failures_and_restart(tmp_path, fixture_templates, capsys, jobs):
    out = tmp_path / "out"
    argv = ["--profile", "smoke", "--epochs", "1", "--conditions", "original", "generated", "original+unsteered",
            "--out", str(out), "--templates", str(fixture_templates), "--jobs", jobs]
    assert main(argv) == 1
    runs = out / "runs"
    status = {p.name: load_json(p / "metrics.json")["status"] for p in runs.iterdir()}
    assert status == {"walks-s0": "failed", "data-generated-s0": "failed", "data-unsteered-s0": "ok", "train-original-e1-s0": "ok",
                      "train-generated-e1-s0": "failed", "train-original+unsteered-e1-s0": "ok", "report": "ok"}
    assert "RuntimeError: walks fixture failure" in load_json(runs / "walks-s0" / "metrics.json")["error"]
    assert load_json(runs / "train-generated-e1-s0" / "metrics.json")["error"] == "not run because data-generated-s0 failed"
    assert not (runs / "train-generated-e1-s0" / "train.ipynb").exists()
    for name in ("walks.ipynb", "log.txt"): assert (runs / "walks-s0" / name).exists()
    for name in ("train.ipynb", "log.txt", "params.json"): assert (runs / "train-original-e1-s0" / name).exists()
    acc = pd.read_csv(out / "accuracy.csv")
    assert acc.condition.tolist() == ["original", "generated", "original+unsteered"]
    assert acc.status.tolist() == ["ok", "failed", "ok"]
    assert acc.top1.tolist()[0] == 1.0

    done = (runs / "train-original-e1-s0" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "train-original-e1-s0" in printed
    assert "done earlier, skipped" in printed
    assert (runs / "train-original-e1-s0" / "metrics.json").stat().st_mtime_ns == done
    assert "RuntimeError: walks fixture failure" in printed


def test_cli_rejects_bad_options(tmp_path, capsys):
    for argv, message in ((["--epochs", "0", "5"], "--epochs 0 5 is invalid"), (["--set", "LR=1"], "GLOB:NAME=VALUE"),
                          (["--profile", "huge"], "invalid choice: 'huge'"), (["--jobs", "0"], "--jobs 0 is invalid")):
        with pytest.raises(SystemExit) as info: main([*argv, "--out", str(tmp_path)])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "plan.json").exists()


def test_module_entry_point_dry_run():
    result = subprocess.run([sys.executable, "-m", "steernb.runs", "--profile", "smoke", "--dry-run"], capture_output=True, text=True,
                            env={**os.environ, "STEERNB_PROGRESS": "0"})
    assert result.returncode == 0, result.stderr
    ids = [line.split()[0] for line in result.stdout.splitlines()]
    assert ids[0] == "walks-s0"
    assert ids[-1] == "report"
    assert len(ids) == 1 + 2 + 5 * 2 + 1


# --- the smoke profile end to end, through the real command ------------------------------------------------

def steernb_run(*args, env):
    exe = Path(sys.executable).with_name("steernb-run")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "STEERNB_CACHE": str(root / "cache"), "STEERNB_PROGRESS": "0", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = steernb_run("--profile", "smoke", "--out", str(root / "out"), "--jobs", "2", env=env)
    return root, env, result


def test_smoke_end_to_end(smoke):
    root, env, result = smoke
    assert result.returncode == 0, result.stdout + result.stderr
    out = root / "out"
    runs = sorted(p.name for p in (out / "runs").iterdir())
    expected = ["walks-s0", "data-generated-s0", "data-unsteered-s0", "report"] + [
        f"train-{c}-e{e}-s0" for c in CONDITIONS for e in ("1-of2", "2")]
    assert runs == sorted(expected)
    for name in runs:
        run = out / "runs" / name
        assert load_json(run / "metrics.json")["status"] == "ok", name
        assert (run / "log.txt").exists(), name
        assert (run / "params.json").exists(), name
        assert len(list(run.glob("*.ipynb"))) == 1
    params = load_json(out / "runs" / "train-generated-e1-of2-s0" / "params.json")
    assert (params["CONDITION"], params["EPOCHS"], params["SCHEDULE_EPOCHS"], params["SEED"]) == ("generated", 1, 2, 0)
    history = [json.loads(l) for l in (out / "runs" / "train-original-e2-s0" / "train.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]  # the 2-epoch run continued the 1-epoch checkpoint of the same schedule

    acc = pd.read_csv(out / "accuracy.csv")
    assert list(acc.columns) == ["condition", "epochs", "seed", "top1", "top5", "status"]
    assert len(acc) == 10
    assert set(acc.status) == {"ok"}
    assert acc.top1.between(0, 100).all()
    assert (acc.top5 >= acc.top1).all()
    md = (out / "accuracy.md").read_text()
    for c in CONDITIONS: assert f"| {c} |" in md
    steer = pd.read_csv(out / "steerability.csv")
    assert list(steer.columns) == ["transform", "alpha", "walk_error", "baseline_error"]
    assert set(steer["transform"]) == set(PROFILES["smoke"]["walks"]["transforms"])
    grids = sorted(p.name for p in (out / "grids").glob("*.png"))
    assert "data-generated-s0-samples.png" in grids
    assert "walks-s0-steer_zoom.png" in grids
    assert "data-generated-s0-class_table.png" in grids
    assert "walks-s0-achieved_alpha.png" in grids
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert not any((REPO / "nbs").rglob("metrics.json"))


def test_smoke_restart_skips_completed(smoke):
    root, env, _ = smoke
    before = (root / "out" / "runs" / "walks-s0" / "metrics.json").stat().st_mtime_ns
    result = steernb_run("--profile", "smoke", "--out", str(root / "out"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("done earlier, skipped") == 13
    assert (root / "out" / "runs" / "walks-s0" / "metrics.json").stat().st_mtime_ns == before


def test_smoke_bad_parameter_fails_one_run(smoke):
    root, env, _ = smoke
    result = steernb_run("--profile", "smoke", "--out", str(root / "out"), "--set", "train-original-e2-*:BATCH_SIZE=0", env=env)
    assert result.returncode == 1
    failed = [p for p in (root / "out" / "runs").iterdir() if p.name.startswith("train-original-e2-s0-x")]
    assert len(failed) == 1
    metrics = load_json(failed[0] / "metrics.json")
    assert metrics["status"] == "failed"
    assert metrics["error"].startswith("ValueError: BATCH_SIZE=0 is invalid")
    acc = pd.read_csv(root / "out" / "accuracy.csv")
    assert len(acc) == 10
    assert acc.status.tolist().count("failed") == 1
    assert acc[acc.status == "failed"][["condition", "epochs"]].values.tolist() == [["original", 2]]
    assert "`train-original-e2-s0-x" in (root / "out" / "accuracy.md").read_text()


# --- the imagenet25 profile's loaders on a fake ImageNet folder and a random BigGAN-deep ---------------------

def test_imagenet25_wiring_fake_data(tmp_path):
    import numpy as np
    from PIL import Image
    from steernb.generators import random_biggan, save_biggan_folder
    from steernb.runs import class_list, condition_data, get_walks, load_generator, profile_settings, record_walks, real_data, train_condition

    wnids = ["n01440764", "n01484850", "n01494475"]  # ImageNet-1k indices 0, 2 and 4, inside the random model's 10 classes
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in wnids:
            folder = tmp_path / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i in range(4): Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"{wnid}_{i}.JPEG")
    save_biggan_folder(random_biggan(32), tmp_path / "biggan")
    S = profile_settings("imagenet25", imagenet_root=str(tmp_path / "imagenet"), biggan_dir=str(tmp_path / "biggan"))
    S["data"].update(wnids=wnids, n_real=2, n_extra=2, image_size=32)
    S["walks"].update(steps=2, batch_size=2)
    S["steerability"].update(n_z=2, n_alphas=3)
    S["generate"].update(batch_size=8)
    S["train"].update(arch="resnet10_s2_w8", batch_size=4, base_batch_size=4, crop=28)

    train, test = real_data(S)
    assert train.classes == wnids
    assert len(train) == 6
    assert len(test) == 12
    assert class_list(S) == ([0, 2, 4], wnids)
    G = load_generator(S)
    table = record_walks(S, G, get_walks(S, 0, G), tmp_path / "walks")
    assert set(table["transform"]) == {"rotate", "zoom", "shift_x", "shift_y", "color"}
    for condition in ("generated", "original+unsteered"):
        train_set, test_set = condition_data(S, condition, 0)
        assert len(train_set) == 12
        assert tuple(train_set.images.shape[1:]) == (3, 32, 32)
        metrics = train_condition(S, train_set, test_set, condition, 1, 2, 0, tmp_path / condition)
        assert metrics["epochs"] == 1
        assert 0 <= metrics["top1"] <= 100


def test_imagenet25_missing_inputs_fail_before_running(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["--profile", "imagenet25", "--imagenet-root", str(tmp_path / "absent"), "--biggan-dir", str(tmp_path / "no-weights"),
              "--out", str(out)])
    message = str(info.value.code)
    assert "nothing was run" in message
    assert "--imagenet-root" in message
    assert "n01440764" in message
    assert "pytorch_model.bin" in message
    assert "--biggan-dir" in message
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--seeds", "-1"], ["--epochs", "abc"], ["--profile", "nope"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--profile", "smoke", *argv])
    assert info.value.code == 2
    assert "steernb-run: error:" in capsys.readouterr().err


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_running_steps(tmp_path, signum, status):
    # Each kernel runs in its own session, so SIGINT reaches only the runner, which must pass it on.
    folder = tmp_path / "templates"
    folder.mkdir()
    fixture_template(folder, "train", TEMPLATE_PARAMS["train"],
                     "import pathlib, time\npathlib.Path(RUN_DIR, 'started').touch()\ntime.sleep(120)")
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("steernb-run")
    runner = subprocess.Popen([str(exe), "--profile", "smoke", "--epochs", "1", "--conditions", "original", "original+transform",
                               "--out", str(out), "--templates", str(folder), "--jobs", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "STEERNB_PROGRESS": "0"},
                              # a shell ignores SIGINT in its background jobs and their children inherit that; a terminal user's runner does not
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = [out / "runs" / f"train-{c}-e1-s0" / "started" for c in ("original", "original+transform")]
    deadline = time.monotonic() + 90
    while not all(p.exists() for p in started):
        assert runner.poll() is None, runner.communicate()[0]
        assert time.monotonic() < deadline, "the steps did not start within 90 s"
        time.sleep(0.5)
    interrupted = time.monotonic()
    runner.send_signal(signum)
    printed, _ = runner.communicate(timeout=60)
    assert runner.returncode == status, printed
    assert time.monotonic() - interrupted < 30, "the runner waited for the sleeping cells instead of interrupting them"
    assert "interrupted: stopping" in printed
    for c in ("original", "original+transform"):
        metrics = load_json(out / "runs" / f"train-{c}-e1-s0" / "metrics.json")
        assert metrics["status"] == "failed"
        assert "KeyboardInterrupt" in metrics["error"]
    assert not (out / "runs" / "report").exists()
