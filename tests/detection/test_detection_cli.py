"""`npcseg detect train | predict | ablation` on a tiny cache with CliRunner: exit codes, messages, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from detection_tiny_cache import train_tiny_segmentation_run, write_tiny_detection_cache
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.data.splits import Fold, save_splits
from npcseg.detection.ablation import ABLATION_SETTINGS
from npcseg.detection.run_folder import DETECTOR_FILENAME

TINY_YAML = """
encoder_depth: 18
backbone_width: 8
input_size: 32
hidden_sizes: [32]
batch_size: 8
replay_size: 64
target_sync_steps: 10
max_steps: 5
seed: 1
exploration:
  eps_priori_decay: 0.4
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("detection_cli")
    write_tiny_detection_cache(root / "cache", num_cases=3)
    (root / "tiny.yaml").write_text(TINY_YAML)
    return root / "cache", root / "tiny.yaml"


def test_train_then_predict(setup: tuple[Path, Path], tmp_path: Path) -> None:
    cache, config = setup
    runner = CliRunner()
    run = tmp_path / "run"
    arguments = ["detect", "train", "--cache", str(cache), "--out", str(run), "--cases", "case000,case001"]
    arguments += ["--config", str(config), "--epochs", "1", "--eps-priori", "0.6", "--no-progress"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "trained 1 epoch(s)" in result.output and "4 tumour slice(s) of 2 case(s)" in result.output
    assert (run / DETECTOR_FILENAME).is_file()
    assert "eps_priori: 0.6" in (run / "config.yaml").read_text()
    again = runner.invoke(app, arguments)
    assert again.exit_code == 0 and "already complete" in again.output
    changed = runner.invoke(app, [*arguments[:-2], "0.8", "--no-progress"])
    assert changed.exit_code == 2 and "exploration.eps_priori: 0.6 -> 0.8" in changed.output

    out = tmp_path / "predicted"
    result = runner.invoke(
        app, ["detect", "predict", "--run", str(run), "--cache", str(cache), "--out", str(out), "--figures", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "1 case(s), 2 tumour slice(s)" in result.output  # default: the case not trained on
    with (out / "detection_slices.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["case_id"], int(row["z"])) for row in rows] == [("case002", 1), ("case002", 2)]
    summary = json.loads((out / "detection_summary.json").read_text())
    assert summary["summary"]["num_slices"] == 2 and summary["extra"]["case_ids"] == ["case002"]
    assert len(list((out / "figures").glob("*.png"))) == 1


def test_train_on_a_fold_and_bad_input(setup: tuple[Path, Path], tmp_path: Path) -> None:
    cache, config = setup
    splits = tmp_path / "splits.json"
    save_splits([Fold(0, ("case001", "case002"), ("case000",)), Fold(1, ("case000",), ("case001", "case002"))], splits)
    runner = CliRunner()
    run = tmp_path / "fold1"
    arguments = ["detect", "train", "--cache", str(cache), "--out", str(run), "--splits", str(splits), "--fold", "1"]
    result = runner.invoke(app, [*arguments, "--config", str(config), "--epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["train_ids"] == ["case000"] and record["val_ids"] == ["case001", "case002"]
    lone_fold = runner.invoke(app, ["detect", "train", "--cache", str(cache), "--out", str(run), "--fold", "1"])
    assert lone_fold.exit_code == 2 and "--splits and --fold go together" in lone_fold.output
    missing = runner.invoke(
        app, ["detect", "predict", "--run", str(tmp_path / "nothing"), "--cache", str(cache), "--out", str(tmp_path)]
    )
    assert missing.exit_code == 2 and "error" in missing.output


def test_ablation_writes_table_and_figure(setup: tuple[Path, Path], tmp_path: Path) -> None:
    cache, config = setup
    out = tmp_path / "ablation"
    arguments = ["detect", "ablation", "--cache", str(cache), "--out", str(out), "--train", "case000"]
    arguments += ["--test", "case002", "--config", str(config), "--epochs", "1", "--no-progress"]
    baseline = tmp_path / "regressor.yaml"
    baseline.write_text("base_width: 4\ninput_size: 32\npooled_size: 1\nhidden_size: 8\nepochs: 1\nbatch_size: 2\n")
    heatmap_run = train_tiny_segmentation_run(cache, tmp_path / "segmentation", ["case000"])
    arguments += ["--heatmap", str(heatmap_run), "--heatmap-threshold", "0.3", "--heatmap-threshold", "0.05"]
    result = CliRunner().invoke(app, [*arguments, "--baseline-config", str(baseline)])
    assert result.exit_code == 0, result.output
    with (out / "ablation.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    others = ["box_regressor", "heatmap_t0.3", "heatmap_t0.05", "start_box", "prior_policy"]
    assert [row["setting"] for row in rows] == [*(name for name, _ in ABLATION_SETTINGS), *others]
    for name in others:
        assert f"{name}:" in result.output and (out / name / "detection_summary.json").is_file()
    for name, threshold in (("heatmap_t0.3", 0.3), ("heatmap_t0.05", 0.05)):
        assert json.loads((out / name / "detection_summary.json").read_text())["extra"]["threshold"] == threshold
    # a lower threshold boxes a superset of the pixels: the box contains the higher threshold's, recall cannot drop
    high, low = (rows[len(ABLATION_SETTINGS) + k] for k in (1, 2))
    assert float(low["recall_mean"]) >= float(high["recall_mean"])
    assert float(low["recall_min"]) >= float(high["recall_min"])
    assert float(rows[-2]["enlarged_recall_mean"]) >= float(rows[-2]["recall_mean"])  # the start box, x1.5
    assert all(int(row["num_slices"]) == 2 for row in rows)
    assert "| eps_greedy |" in (out / "ablation.md").read_text()
    assert (out / "convergence.png").stat().st_size > 1000
    for name, eps_priori in ABLATION_SETTINGS:
        assert f"eps_priori: {eps_priori}" in (out / name / "run" / "config.yaml").read_text()
    twice = CliRunner().invoke(app, [*arguments, "--heatmap-threshold", "0.3", "--no-baseline"])
    assert twice.exit_code == 2 and "distinct" in twice.output
    no_run = [*arguments[: arguments.index("--heatmap")], "--heatmap-threshold", "0.3", "--no-baseline"]
    alone = CliRunner().invoke(app, no_run)
    assert alone.exit_code == 2 and "without a heat-map run" in alone.output


def test_presence_classifier_as_the_detector_backbone(setup: tuple[Path, Path], tmp_path: Path) -> None:
    import torch
    import yaml

    cache, config = setup
    runner = CliRunner()
    presence_config = tmp_path / "presence.yaml"
    presence_config.write_text("base_width: 8\ninput_size: 32\nepochs: 1\nsteps_per_epoch: 2\nbatch_size: 4\n")
    presence = tmp_path / "presence"
    arguments = ["detect", "presence", "--cache", str(cache), "--out", str(presence), "--cases", "case000,case001"]
    result = runner.invoke(app, [*arguments, "--val-cases", "case002", "--config", str(presence_config)])
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output and (presence / "preprocessing.yaml").is_file()
    run = tmp_path / "run"
    arguments = ["detect", "train", "--cache", str(cache), "--out", str(run), "--cases", "case000,case001"]
    result = runner.invoke(app, [*arguments, "--config", str(config), "--epochs", "1", "--backbone", str(presence)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "config.yaml").read_text())["backbone_weights"] == str(presence.resolve())
    stored = torch.load(run / DETECTOR_FILENAME, weights_only=True)["backbone"]
    trained = torch.load(presence / "checkpoint_best.pt", weights_only=True)["model"]
    assert all(torch.equal(stored[key], trained[f"encoder.{key}"]) for key in stored)
