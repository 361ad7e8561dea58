"""Validation scores against hand-built predictions: perfect, empty, and half-overlapping."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from training_builders import write_cache

from npcseg.data.dataset import SliceDataset
from npcseg.losses import build_loss
from npcseg.training.validation import validate


class ChannelAsLogits(torch.nn.Module):
    """Logits ``scale * (channel 0 - 0.5) + shift`` columns: predicts channel 0 thresholded at 0.5."""

    def __init__(self, shift_columns: int = 0) -> None:
        super().__init__()
        self.shift_columns = shift_columns

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 40.0 * (torch.roll(images[:, :1], self.shift_columns, dims=-1) - 0.5)


@pytest.fixture
def dataset(tmp_path: Path) -> SliceDataset:
    label = np.zeros((3, 32, 32), dtype=np.uint8)
    label[0, 8:16, 8:16] = 1  # slice 1 is empty in both reference and prediction
    label[2, 4:12, 20:28] = 1
    image = np.stack([label, label]).astype(np.float32)
    empty = np.zeros_like(label)
    cache = write_cache(tmp_path / "cache", {"p1": (image, label), "p2": (np.zeros_like(image), empty)})
    return SliceDataset(cache, ["p1", "p2"], ("t1", "t2"))


def test_a_perfect_prediction_scores_one(dataset: SliceDataset) -> None:
    result = validate(ChannelAsLogits(), dataset, build_loss("dice"), threshold=0.5, batch_size=2)
    assert result.case_dice == {"p1": 1.0, "p2": 1.0}  # p2: both empty counts as 1
    assert result.dice == 1.0 and result.slice_dice == 1.0
    assert result.loss == pytest.approx(0.0, abs=1e-3)


def test_a_shifted_prediction_scores_its_overlap(dataset: SliceDataset) -> None:
    model = ChannelAsLogits(shift_columns=4)  # 8 x 8 squares moved by 4 columns: half overlap, Dice 0.5
    result = validate(model, dataset, build_loss("dice"), threshold=0.5, batch_size=1)
    assert result.case_dice["p1"] == pytest.approx(0.5) and result.case_dice["p2"] == 1.0
    assert result.dice == pytest.approx(0.75) and result.slice_dice == pytest.approx(0.5)
    assert model.training  # the previous mode is restored


def test_without_any_tumour_slice_dice_is_nan(dataset: SliceDataset) -> None:
    only_empty = SliceDataset(dataset.cache, ["p2"], ("t1",))
    result = validate(ChannelAsLogits(), only_empty, build_loss("dice"), threshold=0.5, batch_size=2)
    assert result.dice == 1.0 and math.isnan(result.slice_dice)
