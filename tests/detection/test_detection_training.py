"""A tiny end-to-end detector run (seconds): training, logs, checkpoints, resume identity, refusal, inference."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from detection_tiny_cache import write_tiny_detection_cache

from npcseg.detection import training
from npcseg.detection.config import DetectorConfig, ExplorationConfig
from npcseg.detection.environment import detection_slices
from npcseg.detection.inference import load_detector
from npcseg.detection.run_folder import DETECTOR_FILENAME, LAST_CHECKPOINT_FILENAME, LOG_COLUMNS
from npcseg.detection.training import train_detector

TINY = DetectorConfig(
    encoder_depth=18,
    backbone_width=8,
    input_size=32,
    hidden_sizes=(32,),
    epochs=2,
    batch_size=8,
    replay_size=64,
    target_sync_steps=10,
    max_steps=6,
    learning_rate=1e-3,
    exploration=ExplorationConfig(eps_priori=0.8, eps_priori_decay=0.4, eps=0.5, eps_decay=0.25),
    seed=3,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detection_cache")
    write_tiny_detection_cache(root, num_cases=3)
    return root


def _q_weights(run: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run / DETECTOR_FILENAME, map_location="cpu", weights_only=True)
    return dict(payload["q"])


def test_tiny_run_writes_a_complete_run_folder(cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train_detector(cache, ["case000", "case001"], run, TINY, val_ids=["case002"], progress=False)
    assert result.num_train_slices == 4 and result.num_val_slices == 2 and result.epochs_trained == 2
    assert 0.0 <= result.cache_hit_rate <= 1.0
    with (run / "log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == LOG_COLUMNS and [int(row["epoch"]) for row in rows] == [0, 1]
    # the exploration schedule of the config, epoch by epoch
    assert [(float(row["eps_priori"]), float(row["eps"])) for row in rows] == [(0.8, 0.5), (0.4, 0.25)]
    # 4 episodes per epoch of at most 6 steps; updates start once the replay holds a batch of 8
    assert 0 < float(rows[1]["num_updates"]) <= 24 and math.isfinite(float(rows[1]["loss"]))
    assert 0.0 <= float(rows[1]["val_recall_min"]) <= float(rows[1]["val_recall_mean"]) <= 1.0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "complete" and record["train_ids"] == ["case000", "case001"]
    assert {"python", "torch", "numpy", "gymnasium"} <= set(record["versions"]) and record["seed"] == 3
    checkpoint = torch.load(run / LAST_CHECKPOINT_FILENAME, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 2
    # inference: the loaded detector rebuilds the seeded backbone and gives boxes inside the slice
    detector = load_detector(run)
    assert detector.sequences == ("t1", "t1c", "t2")
    slices = detection_slices(cache, ["case002"], detector.sequences)
    results = detector.detect_slices(slices)
    for item, outcome in zip(slices, results, strict=True):
        assert len(outcome.boxes) == len(outcome.actions) + 1 and 1 <= len(outcome.actions) <= TINY.max_steps
        assert outcome.box == outcome.boxes[-1]
        assert 0 <= outcome.box.top < outcome.box.bottom <= 32 and 0 <= outcome.box.left < outcome.box.right <= 32
        assert detector.detect(item.image) == outcome  # the same greedy episode without the target
    # a rerun of a finished run trains nothing
    again = train_detector(cache, ["case000", "case001"], run, TINY, val_ids=["case002"], progress=False)
    assert again.already_complete and again.epochs_trained == 0


def test_resume_gives_the_weights_of_an_uninterrupted_run(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = tmp_path / "straight"
    train_detector(cache, ["case000", "case001"], straight, TINY, progress=False)
    # 1 epoch, then the same folder asked for 2: continues from checkpoint_last.pt
    extended = tmp_path / "extended"
    train_detector(cache, ["case000", "case001"], extended, replace(TINY, epochs=1), progress=False)
    result = train_detector(cache, ["case000", "case001"], extended, TINY, progress=False)
    assert result.resumed and result.epochs_trained == 1
    # a crash right after the first epoch's checkpoint, then a rerun
    crashed = tmp_path / "crashed"
    real_write_log = training.write_log

    def crash_after_first_epoch(run_dir: Path, rows: list[dict[str, float]]) -> None:
        real_write_log(run_dir, rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "write_log", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_detector(cache, ["case000", "case001"], crashed, TINY, progress=False)
    monkeypatch.setattr(training, "write_log", real_write_log)
    assert not (crashed / DETECTOR_FILENAME).exists()
    train_detector(cache, ["case000", "case001"], crashed, TINY, progress=False)
    reference = _q_weights(straight)
    for run in (extended, crashed):
        weights = _q_weights(run)
        assert all(torch.equal(reference[key], weights[key]) for key in reference)
    logs = [np.loadtxt(run / "log.csv", delimiter=",", skiprows=1) for run in (straight, extended, crashed)]
    columns = [LOG_COLUMNS.index(name) for name in ("loss", "reward", "train_iou", "train_recall")]
    assert np.array_equal(logs[0][:, columns], logs[1][:, columns]) and np.array_equal(
        logs[0][:, columns], logs[2][:, columns]
    )


def test_other_settings_or_cases_are_refused(cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    one_epoch = replace(TINY, epochs=1)
    train_detector(cache, ["case000"], run, one_epoch, progress=False)
    with pytest.raises(ValueError, match=r"learning_rate: 0\.001 -> 0\.01.*gamma|gamma.*learning_rate"):
        train_detector(cache, ["case000"], run, replace(one_epoch, learning_rate=0.01, gamma=0.5), progress=False)
    with pytest.raises(ValueError, match=r"exploration\.eps_priori"):
        changed = replace(one_epoch, exploration=replace(one_epoch.exploration, eps_priori=0.4))
        train_detector(cache, ["case000"], run, changed, progress=False)
    with pytest.raises(ValueError, match="other train_ids"):
        train_detector(cache, ["case001"], run, one_epoch, progress=False)
    with pytest.raises(ValueError, match="both the training and the validation"):
        train_detector(cache, ["case000"], tmp_path / "other", one_epoch, val_ids=["case000"], progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a detector run folder"):
        train_detector(cache, ["case000"], tmp_path / "busy", one_epoch, progress=False)


@pytest.mark.parametrize("judge", [False, True])
def test_judged_step_limits_are_stored_as_terminal_transitions(cache: Path, tmp_path: Path, judge: bool) -> None:
    from npcseg.detection.boxes import TERMINAL_ACTION

    random_actions = ExplorationConfig(eps_priori=0.0, eps=1.0, eps_min=1.0)
    config = replace(TINY, epochs=1, max_steps=2, exploration=random_actions)
    config = replace(config, reward=replace(config.reward, judge_step_limit=judge))
    train_detector(cache, ["case000", "case001"], tmp_path / "run", config, progress=False)
    replay = torch.load(tmp_path / "run" / LAST_CHECKPOINT_FILENAME, weights_only=True)["agent"]["replay"]
    terminal_actions = int((replay["actions"] == TERMINAL_ACTION).sum())
    # 4 episodes (tumour slices); judged, each episode's last transition is terminal, else only terminal actions
    assert int(replay["terminals"].sum()) == (4 if judge else terminal_actions)
    assert judge or terminal_actions < 4  # the seed's random episodes include cut ones, so the two cases differ
