"""`npcseg train` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from training_builders import TINY_DEU, blob_cache, blob_case, write_cache
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.config import save_config
from npcseg.training.config import TrainingConfig

runner = CliRunner()


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    save_config(TrainingConfig(model_options=TINY_DEU, num_threads=1, batch_size=2, epochs=5), path)
    return path


def test_train_with_explicit_ids_then_rerun_reports_complete(tmp_path: Path) -> None:
    cache = blob_cache(tmp_path / "cache", ["a", "b", "c"], num_slices=4, size=32)
    options = ["train", "--cache", str(cache), "--out", str(tmp_path / "run"), "--config", str(config_file(tmp_path))]
    options += ["--train-ids", "a, c", "--val-ids", "b", "--epochs", "2", "--seed", "3", "--no-progress"]
    result = runner.invoke(app, options)
    assert result.exit_code == 0, result.output
    assert "trained 2 epoch(s), 8 step(s)" in result.output and "best validation Dice" in result.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["train_ids"] == ["a", "c"] and record["val_ids"] == ["b"] and record["seed"] == 3
    again = runner.invoke(app, options)
    assert again.exit_code == 0 and "already complete" in again.output


def test_without_ids_the_labelled_cases_are_split_by_seed(tmp_path: Path) -> None:
    cases = {name: blob_case(index, num_slices=2, size=32) for index, name in enumerate(["a", "b", "c", "d"])}
    cache = write_cache(tmp_path / "cache", {**cases, "u": (cases["a"][0], None)})  # "u" has no label
    options = ["train", "--cache", str(cache), "--out", str(tmp_path / "run"), "--config", str(config_file(tmp_path))]
    result = runner.invoke(app, [*options, "--epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(record["val_ids"]) == 1 and sorted(record["train_ids"] + record["val_ids"]) == ["a", "b", "c", "d"]


def test_bad_input_exits_with_a_message(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["train", "--cache", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert missing.exit_code == 2 and "error:" in missing.output and "nope" in missing.output
    cache = blob_cache(tmp_path / "cache", ["a", "b"], num_slices=2, size=32)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sequences: [t1, t1c]\n")
    result = runner.invoke(app, ["train", "--cache", str(cache), "--out", str(tmp_path / "run"), "--config", str(bad)])
    assert result.exit_code == 2 and "t1c" in result.output
