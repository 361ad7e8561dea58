"""Soft Dice loss: minimum, hand-computed values, gradients, convergence, registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from npcseg.losses import DiceLoss, build_loss, loss_names, soft_dice


def _disc(size: int = 16, radius: float = 5.0) -> torch.Tensor:
    grid = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    return ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).float()[None, None]


@pytest.mark.parametrize("batch_dice", [False, True])
def test_perfect_prediction_gives_zero(batch_dice: bool) -> None:
    reference = torch.cat([_disc(), torch.zeros_like(_disc())])
    logits = 30.0 * (2.0 * reference - 1.0)
    assert DiceLoss(batch_dice=batch_dice)(logits, reference).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_values() -> None:
    reference = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    logits = torch.stack([torch.zeros(1, 2, 2), torch.full((1, 2, 2), math.log(3.0))])
    # sample 1: p = 0.5 x 4, sum p t = 0.5, sum p = 2, sum t = 1 -> (1 + 1) / (3 + 1) = 1/2
    # sample 2: p = 0.75 x 4, sum p t = 3, sum p = 3, sum t = 4 -> (6 + 1) / (7 + 1) = 7/8
    per_sample = soft_dice(logits, reference)
    torch.testing.assert_close(per_sample, torch.tensor([0.5, 0.875]))
    assert DiceLoss()(logits, reference).item() == pytest.approx(1 - (0.5 + 0.875) / 2)
    # batch: sum p t = 3.5, sum p + sum t = 10 -> (7 + 1) / (10 + 1)
    assert DiceLoss(batch_dice=True)(logits, reference).item() == pytest.approx(1 - 8 / 11)
    # without smoothing, sample 1 is 2 * 0.5 / 3
    assert soft_dice(logits[:1], reference[:1], smooth=0.0).item() == pytest.approx(1 / 3)


def test_empty_reference_is_rewarded_for_an_empty_prediction() -> None:
    reference = torch.zeros(1, 1, 4, 4)
    assert DiceLoss()(torch.full((1, 1, 4, 4), -30.0), reference).item() == pytest.approx(0.0, abs=1e-9)
    # 16 voxels at p = 0.5: dice = 1 / (8 + 1)
    assert DiceLoss()(torch.zeros(1, 1, 4, 4), reference).item() == pytest.approx(1 - 1 / 9)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_gradcheck_float64(batch_dice: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 3, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    reference = (torch.rand(2, 1, 3, 4, generator=generator) > 0.5).double()
    loss = DiceLoss(smooth=0.5, batch_dice=batch_dice)
    assert torch.autograd.gradcheck(lambda x: loss(x, reference), (logits,))


def test_a_tiny_network_fits_one_mask() -> None:
    torch.manual_seed(0)
    reference = _disc(24, 6.0)
    image = reference + 0.3 * torch.randn_like(reference)
    network = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    optimizer = torch.optim.Adam(network.parameters(), lr=0.02)
    loss_function = DiceLoss()
    first = loss_function(network(image), reference).item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = loss_function(network(image), reference)
        loss.backward()
        optimizer.step()
    assert first > 0.3
    assert loss.item() < 0.05


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        DiceLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="smooth"):
        DiceLoss(smooth=-1.0)


def test_registry() -> None:
    assert "dice" in loss_names()
    loss = build_loss("dice", smooth=0.5, batch_dice=True)
    assert isinstance(loss, DiceLoss)
    assert (loss.smooth, loss.batch_dice) == (0.5, True)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")
    with pytest.raises(ValueError, match="bad arguments"):
        build_loss("dice", gamma=2.0)
