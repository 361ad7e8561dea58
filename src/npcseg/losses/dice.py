"""Soft Dice loss on the sigmoid of logits (Milletari et al., 2016), the DEU paper's training objective.

For probabilities ``p = sigmoid(logits)`` and a reference ``t`` in [0, 1], with sums over the voxels ``i`` of one
sample (``batch_dice=False``) or of the whole batch (``batch_dice=True``)::

    dice = (2 * sum_i p_i t_i + smooth) / (sum_i p_i + sum_i t_i + smooth)
    loss = 1 - dice                       (averaged over the samples when batch_dice is False)

Empty references: for a sample whose reference is empty, ``dice = smooth / (sum_i p_i + smooth)``, so the loss goes
to 0 as the prediction empties (a correct empty prediction is rewarded) and towards 1 as it predicts more
foreground; ``smooth`` sets how fast (with ``smooth = 1`` a total predicted probability of 1 voxel costs 0.5). With
``batch_dice=True`` an empty slice only matters through the batch sums, which is steadier when most slices hold no
tumour (the DEU data: 1,950 slices, tumour in a minority) but lets a batch's foreground dominate.
"""

from __future__ import annotations

import torch
from torch import nn


def soft_dice(
    logits: torch.Tensor, reference: torch.Tensor, *, smooth: float = 1.0, batch_dice: bool = False
) -> torch.Tensor:
    """Soft Dice coefficient(s) of ``sigmoid(logits)`` against ``reference``.

    Args:
        logits: ``(B, ...)`` raw network outputs, e.g. ``(B, 1, H, W)``.
        reference: same shape, values in [0, 1] (binary masks or soft labels).
        smooth: added to numerator and denominator; > 0 keeps empty masks finite.
        batch_dice: sum over the whole batch (one coefficient) instead of per sample.

    Returns:
        ``(B,)`` per-sample coefficients, or a 0-d tensor when ``batch_dice``.

    Raises:
        ValueError: on mismatched shapes, no batch axis or a negative ``smooth``.
    """
    if logits.shape != reference.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and reference {tuple(reference.shape)} differ in shape")
    if logits.ndim < 2:
        raise ValueError(f"expected (batch, ...) tensors with at least 2 dimensions, got {tuple(logits.shape)}")
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    probabilities = torch.sigmoid(logits)
    reference = reference.to(probabilities.dtype)
    dims = tuple(range(logits.ndim)) if batch_dice else tuple(range(1, logits.ndim))
    intersection = (probabilities * reference).sum(dim=dims)
    total = probabilities.sum(dim=dims) + reference.sum(dim=dims)
    return (2.0 * intersection + smooth) / (total + smooth)


class DiceLoss(nn.Module):
    """``1 - soft Dice`` of ``sigmoid(logits)``; see the module docstring for the formula and empty masks.

    Args:
        smooth: additive smoothing of numerator and denominator (default 1, the usual choice).
        batch_dice: ``False``: one Dice per sample, loss = 1 - their mean. ``True``: one Dice over all voxels of
            the batch.
    """

    def __init__(self, smooth: float = 1.0, batch_dice: bool = False) -> None:
        super().__init__()
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.batch_dice = bool(batch_dice)

    def forward(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Scalar loss in [0, 1] for logits and reference of the same shape ``(B, ...)``."""
        dice = soft_dice(logits, reference, smooth=self.smooth, batch_dice=self.batch_dice)
        return 1.0 - dice.mean()

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}, batch_dice={self.batch_dice}"
