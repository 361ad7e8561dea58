"""The trainer on a tiny blob cache: it learns, writes its run folder, refuses mismatched reruns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from training_builders import TINY_DEU, blob_cache, blob_case

from npcseg.config import load_config
from npcseg.models import build_model
from npcseg.training.cases import holdout_split
from npcseg.training.config import TrainingConfig
from npcseg.training.run_folder import LOG_COLUMNS, read_log
from npcseg.training.trainer import TrainResult, train

EPOCHS = 10


def tiny_config(**changes: object) -> TrainingConfig:
    settings: dict[str, object] = {
        "model_options": TINY_DEU,
        "learning_rate": 1e-2,
        "epochs": EPOCHS,
        "batch_size": 2,
        "num_threads": 1,
        "checkpoint_every_steps": 0,
        **changes,
    }
    return TrainingConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return blob_cache(tmp_path_factory.mktemp("training") / "cache", ["a", "b", "c"], num_slices=8)


@pytest.fixture(scope="module")
def finished(cache: Path) -> tuple[Path, TrainResult]:
    run_dir = cache.parent / "run"
    return run_dir, train(cache, run_dir, tiny_config(), ["a"], ["b"], progress=False)


def test_a_tiny_network_learns_the_blobs(finished: tuple[Path, TrainResult]) -> None:
    run_dir, result = finished
    log = read_log(run_dir)
    # measured over seeds 0-5: best validation Dice 0.88-0.997 after 40 steps; loss 0.81-0.85 -> 0.34-0.64
    assert result.best_val_dice > 0.8
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.15
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    assert result.num_epochs == EPOCHS and result.num_steps == EPOCHS * 4 and not result.resumed


def test_run_folder_holds_log_config_record_and_checkpoints(cache: Path, finished: tuple[Path, TrainResult]) -> None:
    run_dir, result = finished
    log = read_log(run_dir)
    assert (run_dir / "log.csv").read_text().splitlines()[0] == ",".join(LOG_COLUMNS)
    assert [row["epoch"] for row in log] == list(range(1, EPOCHS + 1))
    assert all(0 <= row["val_dice"] <= 1 and row["seconds"] > 0 and row["learning_rate"] == 1e-2 for row in log)
    assert load_config(TrainingConfig, run_dir / "config.yaml") == tiny_config()
    assert (run_dir / "preprocessing.yaml").read_text() == (cache / "preprocessing.yaml").read_text()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "complete" and record["train_ids"] == ["a"] and record["val_ids"] == ["b"]
    assert record["seed"] == 0 and set(record["versions"]) == {"npcseg", "torch", "numpy", "python"}
    assert record["result"]["num_steps"] == 40 and record["timings"]["train_slices_per_second"] > 0

    best = torch.load(run_dir / "checkpoint_best.pt", weights_only=True)
    best_epoch = int(np.argmax([row["val_dice"] for row in log])) + 1  # first maximum
    assert best["epoch"] == best_epoch == result.best_epoch
    assert best["val_dice"] == pytest.approx(log[best_epoch - 1]["val_dice"]) == pytest.approx(result.best_val_dice)
    model = build_model(best["model_name"], best["model_config"])
    model.load_state_dict(best["model"])
    last = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == EPOCHS and last["step"] == 40
    assert last["sampler_state"]["position"] == 0 and last["progress"]["history"][-1]["epoch"] == EPOCHS


def test_a_finished_run_is_reported_not_retrained(cache: Path, finished: tuple[Path, TrainResult]) -> None:
    run_dir, result = finished
    before = {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()}
    again = train(cache, run_dir, tiny_config(), ["a"], ["b"], progress=False)
    assert again.already_complete and again.num_steps == result.num_steps
    assert again.best_val_dice == pytest.approx(result.best_val_dice)
    assert {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()} == before


def test_a_rerun_with_another_config_or_other_cases_is_refused(cache: Path, finished: tuple[Path, TrainResult]) -> None:
    run_dir, _ = finished
    with pytest.raises(ValueError, match=r"training run with other settings \(epochs: 10 -> 11\)"):
        train(cache, run_dir, tiny_config(epochs=11), ["a"], ["b"], progress=False)
    with pytest.raises(ValueError, match="other val_ids"):
        train(cache, run_dir, tiny_config(), ["a"], ["c"], progress=False)


def test_bad_inputs_are_refused_before_anything_is_written(cache: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=r"\['t1c'\] needed by the model are not in the preprocessed cache"):
        train(cache, run_dir, tiny_config(sequences=("t1", "t1c")), ["a"], ["b"], progress=False)
    with pytest.raises(ValueError, match=r"\['zz'\] are not in the preprocessed cache"):
        train(cache, run_dir, tiny_config(), ["a", "zz"], ["b"], progress=False)
    unlabelled = blob_cache(tmp_path / "unlabelled", ["a", "b"], num_slices=2, size=32)
    (unlabelled / "cases" / "b.npz").unlink()
    image, _ = blob_case(0, num_slices=2, size=32)
    np.savez_compressed(unlabelled / "cases" / "b.npz", image=image)
    with pytest.raises(ValueError, match=r"\['b'\] have no label"):
        train(unlabelled, run_dir, tiny_config(), ["a", "b"], [], progress=False)
    with pytest.raises(ValueError, match="both the training and the validation"):
        train(cache, run_dir, tiny_config(), ["a"], ["a"], progress=False)
    assert not run_dir.exists()
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and not a training run folder"):
        train(cache, run_dir, tiny_config(), ["a"], ["b"], progress=False)


def test_without_validation_cases_the_last_epoch_is_best(cache: Path, tmp_path: Path) -> None:
    config = tiny_config(epochs=2, model="deu-single", sequences=("t2",), max_slices_per_epoch=4)
    result = train(cache, tmp_path / "run", config, ["c"], [], progress=False)
    log = read_log(tmp_path / "run")
    assert len(log) == 2 and all(math.isnan(row["val_dice"]) for row in log)
    assert result.best_epoch == 2 and math.isnan(result.best_val_dice) and result.num_steps == 4


def test_holdout_split_is_seeded_and_disjoint() -> None:
    cases = [f"p{index:02d}" for index in range(20)]
    train_ids, val_ids = holdout_split(cases, 0.1, seed=3)
    assert len(val_ids) == 2 and sorted(train_ids + val_ids) == cases
    assert holdout_split(cases, 0.1, seed=3) == (train_ids, val_ids)
    assert holdout_split(cases, 0.1, seed=4) != (train_ids, val_ids)
    assert holdout_split(["x", "y"], 0.1, seed=0)[1] != []  # at least one validation case
    assert holdout_split(cases, 0.0, seed=0) == (cases, [])
