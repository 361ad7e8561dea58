"""Checkpoints: weights-only loadable, atomic, random states captured and restored exactly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from npcseg.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


def test_payload_with_model_optimizer_and_rng_loads_weights_only(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng_state(),
        "progress": {"history": [{"epoch": 1, "val_dice": float("nan")}], "best_score": -float("inf")},
        "augmentation_rng": torch.Generator().manual_seed(2).get_state(),
        "sampler_state": {"seed": 0, "epoch": 1, "position": 3, "num_draws": 9},
        "model_config": {"widths": [8, 16], "sequences": ["t1", "t2"]},
        "nothing": None,
    }
    path = tmp_path / "sub" / "checkpoint.pt"
    save_checkpoint(payload, path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["model"]["weight"], model.state_dict()["weight"])
    assert loaded["sampler_state"] == payload["sampler_state"] and loaded["nothing"] is None
    other = torch.optim.Adam(model.parameters(), lr=1e-3)
    other.load_state_dict(loaded["optimizer"])
    assert [path.name for path in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_rng_states_round_trip_through_a_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.standard_normal()
    save_checkpoint({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), random.gauss(0, 1), np.random.random(3).tolist(), torch.rand(3).tolist())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (random.random(), random.gauss(0, 1), np.random.random(3).tolist(), torch.rand(3).tolist())
    assert again == expected


def test_missing_and_corrupt_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.pt"):
        load_checkpoint(broken)
