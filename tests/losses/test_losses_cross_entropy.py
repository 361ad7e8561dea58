"""Binary cross-entropy and class-weighted cross-entropy: torch agreement, hand values, gradients, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from npcseg.losses import BCELoss, WeightedBCELoss, build_loss, loss_names
from npcseg.losses.cross_entropy import auto_positive_weight

LN2, LN3 = math.log(2.0), math.log(3.0)


def _random_pair(seed: int = 0, shape: tuple[int, ...] = (2, 1, 6, 5)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(shape, generator=generator)
    reference = (torch.rand(shape, generator=generator) > 0.7).float()
    return logits, reference


def test_bce_equals_torch_and_a_hand_value() -> None:
    logits, reference = _random_pair()
    expected = F.binary_cross_entropy_with_logits(logits, reference)
    torch.testing.assert_close(BCELoss()(logits, reference), expected)
    # p = 0.5 on a tumour pixel: ln 2; p = 0.75 on a background pixel: -ln(0.25) = 2 ln 2; mean 1.5 ln 2
    hand = BCELoss()(torch.tensor([[0.0, LN3]]), torch.tensor([[1.0, 0.0]]))
    assert hand.item() == pytest.approx(1.5 * LN2)


def test_bce_is_stable_for_confident_logits() -> None:
    reference = torch.tensor([[1.0, 0.0]])
    assert BCELoss()(torch.tensor([[200.0, -200.0]]), reference).item() == pytest.approx(0.0, abs=1e-12)
    assert BCELoss()(torch.tensor([[-200.0, 200.0]]), reference).item() == pytest.approx(200.0)


# The 2 x 2 example: logits [[0, ln 3], [-ln 3, 0]], one tumour pixel (top left).
# p = [[1/2, 3/4], [1/4, 1/2]]; per-pixel BCE = [[ln 2, ln 4], [ln(4/3), ln 2]].
HAND_LOGITS = torch.tensor([[[[0.0, LN3], [-LN3, 0.0]]]])
HAND_REFERENCE = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
HAND_PIXELS = [LN2, 2 * LN2, 2 * LN2 - LN3, LN2]


def test_weighted_bce_hand_values() -> None:
    # auto: w+ = N- / N+ = 3; weights [3, 1, 1, 1] sum 6 -> (3 ln2 + 2 ln2 + (2 ln2 - ln3) + ln2) / 6
    auto = WeightedBCELoss("auto")(HAND_LOGITS, HAND_REFERENCE).item()
    assert auto == pytest.approx((8 * LN2 - LN3) / 6)
    # ... which is the mean of the class means: (ln 2 + (ln 4 + ln 4/3 + ln 2) / 3) / 2
    assert auto == pytest.approx((HAND_PIXELS[0] + sum(HAND_PIXELS[1:]) / 3) / 2)
    # fixed w+ = 2: weights [2, 1, 1, 1] sum 5
    fixed = WeightedBCELoss(positive_weight=2.0)(HAND_LOGITS, HAND_REFERENCE).item()
    assert fixed == pytest.approx((7 * LN2 - LN3) / 5)
    assert auto_positive_weight(HAND_REFERENCE) == 3.0


def test_weighted_bce_with_weight_one_and_unbalanceable_batches_is_bce() -> None:
    logits, reference = _random_pair(1)
    bce = BCELoss()(logits, reference)
    torch.testing.assert_close(WeightedBCELoss(1.0)(logits, reference), bce)
    for constant in (torch.zeros_like(reference), torch.ones_like(reference)):
        assert auto_positive_weight(constant) == 1.0
        torch.testing.assert_close(WeightedBCELoss("auto")(logits, constant), BCELoss()(logits, constant))


def test_weighted_bce_soft_labels_use_linear_weights() -> None:
    logits = torch.tensor([[0.3, -1.2, 2.0]])
    reference = torch.tensor([[0.25, 0.0, 1.0]])
    weights = 4.0 * reference + (1.0 - reference)  # w+ = 4: [1.75, 1, 4]
    pixels = F.binary_cross_entropy_with_logits(logits, reference, reduction="none")
    expected = (weights * pixels).sum() / weights.sum()
    torch.testing.assert_close(WeightedBCELoss(4.0)(logits, reference), expected)
    # auto on soft labels: N+ = 1.25, N- = 1.75
    assert auto_positive_weight(reference) == pytest.approx(1.75 / 1.25)


def test_perfect_prediction_gives_zero() -> None:
    reference = HAND_REFERENCE
    logits = 40.0 * (2.0 * reference - 1.0)
    assert BCELoss()(logits, reference).item() == pytest.approx(0.0, abs=1e-12)
    assert WeightedBCELoss()(logits, reference).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("loss", [BCELoss(), WeightedBCELoss(), WeightedBCELoss(7.5)])
def test_gradcheck_float64(loss: nn.Module) -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 3, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    reference = (torch.rand(2, 1, 3, 4, generator=generator) > 0.6).double()
    assert torch.autograd.gradcheck(lambda x: loss(x, reference), (logits,))


def test_weighted_gradient_is_the_weighted_residual() -> None:
    # d/dx_i [sum_j w_j bce_j / sum_j w_j] = w_i (sigmoid(x_i) - t_i) / sum_j w_j
    logits = HAND_LOGITS.clone().requires_grad_(True)
    WeightedBCELoss("auto")(logits, HAND_REFERENCE).backward()
    weights = torch.tensor([[[[3.0, 1.0], [1.0, 1.0]]]])
    expected = weights * (torch.sigmoid(HAND_LOGITS) - HAND_REFERENCE) / 6.0
    assert logits.grad is not None
    torch.testing.assert_close(logits.grad, expected)
    assert logits.grad[0, 0, 0, 0] < 0 < logits.grad[0, 0, 0, 1]


@pytest.mark.parametrize("name", ["bce", "weighted-bce"])
def test_a_tiny_network_fits_one_mask(name: str) -> None:
    torch.manual_seed(0)
    grid = torch.arange(20, dtype=torch.float32) - 9.5
    reference = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= 25.0).float()[None, None]
    image = reference + 0.3 * torch.randn_like(reference)
    network = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    optimizer = torch.optim.Adam(network.parameters(), lr=0.03)
    loss_function = build_loss(name)
    for _ in range(120):
        optimizer.zero_grad()
        loss = loss_function(network(image), reference)
        loss.backward()
        optimizer.step()
    prediction = (network(image) > 0).float()
    dice = 2 * (prediction * reference).sum() / (prediction.sum() + reference.sum())
    assert loss.item() < 0.1
    assert dice.item() > 0.95


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        BCELoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    for bad in ("balanced", 0.0, -1.0, True):
        with pytest.raises(ValueError, match="positive_weight"):
            WeightedBCELoss(bad)  # type: ignore[arg-type]


def test_registry() -> None:
    assert {"bce", "weighted-bce", "dice"} <= set(loss_names())
    assert isinstance(build_loss("bce"), BCELoss)
    loss = build_loss("weighted-bce", positive_weight=5)
    assert isinstance(loss, WeightedBCELoss)
    assert loss.positive_weight == 5.0
    assert build_loss("weighted-bce").positive_weight == "auto"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="bad arguments"):
        build_loss("bce", positive_weight=2.0)
