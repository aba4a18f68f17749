"""steernb.report on run folders written here as test fixtures (no training): tables, failures, plan, grids."""
import math
from pathlib import Path

import pandas as pd
import pytest

from steernb.core import save_json
from steernb.report import ACCURACY_COLUMNS, build_report, collect_runs, read_run


def write_run(profile_dir: Path, name: str, params: dict | None, metrics: dict | None) -> Path:
    run = profile_dir / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    if params is not None: save_json(params, run / "params.json")
    if metrics is not None: save_json(metrics, run / "metrics.json")
    return run


def train_run(profile_dir, condition, epochs, seed, top1=None, status="ok", error=""):
    params = {"TEMPLATE": "train", "CONDITION": condition, "EPOCHS": epochs, "SEED": seed}
    metrics = {"template": "train", "condition": condition, "epochs": epochs, "seed": seed, "status": status}
    if status == "ok": metrics.update(top1=top1, top5=min(100.0, top1 + 20))
    else: metrics["error"] = error
    return write_run(profile_dir, f"train-{condition}-e{epochs}-s{seed}", params, metrics)


def test_report_mean_std_over_seeds(tmp_path):
    for seed, top1 in enumerate([70.0, 72.0, 74.0]): train_run(tmp_path, "original", 10, seed, top1)
    train_run(tmp_path, "generated", 10, 0, 50.0)
    acc = build_report(tmp_path)
    assert list(acc.columns) == ACCURACY_COLUMNS
    md = (tmp_path / "accuracy.md").read_text()
    assert "| original | 72.00 ± 2.00 (n=3) |" in md
    assert "| generated | 50.00 (n=1) |" in md
    assert md.index("| original |") < md.index("| generated |")


def test_report_csv_rows_and_types(tmp_path):
    train_run(tmp_path, "original+transform", 2, 1, 33.25)
    train_run(tmp_path, "original", 1, 0, 10.0)
    build_report(tmp_path)
    df = pd.read_csv(tmp_path / "accuracy.csv")
    assert list(df.columns) == ACCURACY_COLUMNS
    assert df.condition.tolist() == ["original", "original+transform"]
    assert df.epochs.tolist() == [1, 2]
    assert df.top1.tolist() == [10.0, 33.25]
    assert df.status.tolist() == ["ok", "ok"]


def test_report_failed_and_interrupted_runs(tmp_path):
    train_run(tmp_path, "original", 1, 0, 60.0)
    train_run(tmp_path, "generated", 1, 0, status="failed", error="ValueError: BATCH_SIZE=0 is invalid\nTraceback ...")
    write_run(tmp_path, "train-original-e1-s1", {"TEMPLATE": "train", "CONDITION": "original", "EPOCHS": 1, "SEED": 1}, None)
    acc = build_report(tmp_path)
    assert acc.status.tolist() == ["ok", "failed", "failed"]
    assert math.isnan(acc.top1[2])
    md = (tmp_path / "accuracy.md").read_text()
    assert "| original | 60.00 (n=1), 1 failed |" in md
    assert "`train-generated-e1-s0`: ValueError: BATCH_SIZE=0 is invalid" in md
    assert "`train-original-e1-s1`: no metrics.json" in md


def test_report_rebuilt_from_folders(tmp_path):
    import shutil
    train_run(tmp_path, "original", 1, 0, 60.0)
    run = train_run(tmp_path, "original", 1, 1, 62.0)
    assert len(build_report(tmp_path)) == 2
    shutil.rmtree(run)
    assert len(build_report(tmp_path)) == 1
    assert "| original | 60.00 (n=1) |" in (tmp_path / "accuracy.md").read_text()


def test_report_plan_leaves_out_old_folders(tmp_path):
    train_run(tmp_path, "original", 1, 0, 60.0)
    train_run(tmp_path, "original", 5, 0, 80.0)
    save_json({"profile": "fixture", "command": "steernb-run --profile fixture --epochs 1", "runs": ["train-original-e1-s0"]},
              tmp_path / "plan.json")
    acc = build_report(tmp_path)
    assert acc.epochs.tolist() == [1]
    md = (tmp_path / "accuracy.md").read_text()
    assert "Made by `steernb-run --profile fixture --epochs 1`." in md
    assert "outside the current plan, left out: `train-original-e5-s0`" in md


def test_report_without_runs(tmp_path):
    acc = build_report(tmp_path)
    assert len(acc) == 0
    assert (tmp_path / "accuracy.csv").read_text().strip() == ",".join(ACCURACY_COLUMNS)
    assert not (tmp_path / "accuracy.png").exists()


def test_report_steerability_and_grids(tmp_path):
    walks = write_run(tmp_path, "walks-s0", {"TEMPLATE": "walks"}, {"template": "walks", "status": "ok"})
    table = pd.DataFrame(dict(transform=["zoom", "zoom"], alpha=[0.5, 2.0], walk_error=[0.1, 0.2], baseline_error=[0.3, 0.4]))
    table.to_csv(walks / "steerability.csv", index=False)
    (walks / "grids").mkdir()
    (walks / "grids" / "zoom.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    gen = write_run(tmp_path, "data-generated-s0", {"TEMPLATE": "generate"}, {"template": "generate", "status": "ok"})
    (gen / "grids").mkdir()
    (gen / "grids" / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    build_report(tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "steerability.csv"), table)
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["data-generated-s0-samples.png", "walks-s0-zoom.png"]


def test_read_run_merges_params_and_metrics(tmp_path):
    run = write_run(tmp_path, "train-original-e3-s2", {"TEMPLATE": "train", "CONDITION": "original", "EPOCHS": 3, "SEED": 2},
                    {"template": "train", "status": "ok", "top1": 1.0, "top5": 2.0})
    record = read_run(run)
    assert (record["condition"], record["epochs"], record["seed"], record["top1"]) == ("original", 3, 2, 1.0)
    assert collect_runs(tmp_path, "train").run.tolist() == ["train-original-e3-s2"]
    assert collect_runs(tmp_path, "walks").empty
