"""Resuming: a run killed mid-epoch (SIGKILL, in a subprocess) and rerun ends with exactly the weights, optimiser
state, step count and log of a run never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from training_builders import TINY_DEU, blob_cache

from npcseg.config import save_config
from npcseg.training.config import TrainingConfig
from npcseg.training.run_folder import read_log
from npcseg.training.trainer import train

# 2 cases x 6 slices, batch 2: 6 steps per epoch, 18 in all; checkpoints at steps 4, 8, 16 (mid-epoch) and at
# 6, 12, 18 (epoch ends). The subprocess kills itself inside optimiser step 11: steps 9-10 are lost and redone.
CONFIG = TrainingConfig(
    model_options=TINY_DEU,
    learning_rate=3e-3,
    epochs=3,
    batch_size=2,
    num_threads=1,
    checkpoint_every_steps=4,
    tumour_oversampling=0.5,
    seed=11,
)
KILL_AT_STEP = 11

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    from npcseg.training.config import load_training_config
    from npcseg.training.trainer import train

    cache, run_dir, config_path, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    steps = 0

    def count_and_maybe_die(optimizer, args, kwargs):
        global steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup, no final writes

    register_optimizer_step_pre_hook(count_and_maybe_die)
    train(cache, run_dir, load_training_config(config_path), ["a", "b"], ["c"], progress=False)
    """
)


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    cache = blob_cache(tmp_path / "cache", ["a", "b", "c"], num_slices=6, size=32)
    reference = train(cache, tmp_path / "reference", CONFIG, ["a", "b"], ["c"], progress=False)

    run_dir = tmp_path / "interrupted"
    config_path = tmp_path / "config.yaml"
    save_config(CONFIG, config_path)
    script = tmp_path / "kill_midway.py"
    script.write_text(SCRIPT)
    command = [sys.executable, str(script), str(cache), str(run_dir), str(config_path), str(KILL_AT_STEP)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    checkpoint = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    assert checkpoint["step"] == 8 and checkpoint["epoch"] == 1 and checkpoint["sampler_state"]["position"] == 4
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert len(read_log(run_dir)) == 1

    resumed = train(cache, run_dir, CONFIG, ["a", "b"], ["c"], progress=False)
    assert resumed.resumed and not reference.resumed
    assert resumed.num_steps == reference.num_steps == 18
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        expected = torch.load(tmp_path / "reference" / name, weights_only=True)
        actual = torch.load(run_dir / name, weights_only=True)
        assert expected["model"].keys() == actual["model"].keys()
        for key, tensor in expected["model"].items():
            torch.testing.assert_close(actual["model"][key], tensor, rtol=0, atol=1e-6, msg=f"{name}: {key}")
    expected_state = torch.load(tmp_path / "reference" / "checkpoint_last.pt", weights_only=True)["optimizer"]
    actual_state = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)["optimizer"]
    assert [int(state["step"]) for state in actual_state["state"].values()] == [18] * len(actual_state["state"])
    for index, state in expected_state["state"].items():
        torch.testing.assert_close(actual_state["state"][index]["exp_avg_sq"], state["exp_avg_sq"], rtol=0, atol=1e-9)
    for expected_row, actual_row in zip(read_log(tmp_path / "reference"), read_log(run_dir), strict=True):
        for column in ("epoch", "train_loss", "val_loss", "val_dice", "val_slice_dice"):
            assert actual_row[column] == pytest.approx(expected_row[column], abs=1e-6), column
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "complete" and record["sessions"] == 2


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path: Path) -> None:
    cache = blob_cache(tmp_path / "cache", ["a", "b"], num_slices=4, size=32)
    config = CONFIG.with_changes(epochs=1)
    weights = []
    for name, seed in (("first", 5), ("second", 5), ("third", 6)):
        train(cache, tmp_path / name, config.with_changes(seed=seed), ["a"], ["b"], progress=False)
        weights.append(torch.load(tmp_path / name / "checkpoint_last.pt", weights_only=True)["model"])
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])
