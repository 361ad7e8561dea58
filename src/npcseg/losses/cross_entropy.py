"""Binary cross-entropy on logits, plain and class-weighted (SeqSeg Table 4: "cross entropy" and "category weighted").

For probabilities ``p_i = sigmoid(x_i)`` of logits ``x_i`` and a reference ``t_i`` in [0, 1], the per-pixel binary
cross-entropy is::

    bce_i = -[t_i log p_i + (1 - t_i) log(1 - p_i)]

computed from the logits in the numerically stable form of ``torch.nn.functional.binary_cross_entropy_with_logits``.

* ``bce``: ``loss = mean_i bce_i`` over every pixel of the batch.
* ``weighted-bce`` (class-weighted cross-entropy): pixel ``i`` carries the weight ``w_i = w_+ t_i + (1 - t_i)``
  (``w_+`` on tumour, 1 on background; linear in ``t_i`` for soft labels) and::

      loss = sum_i w_i bce_i / sum_i w_i

  a weighted *mean*, normalised by the sum of the weights as the DBW loss (SeqSeg eq. 4) is, so that the loss stays
  on the scale of plain BCE whatever ``w_+`` is and ``w_+ = 1`` gives exactly ``bce``. (``torch``'s ``pos_weight``
  instead divides by the number of pixels; the two differ by the constant factor ``N / sum_i w_i`` of a batch.)
  ``positive_weight="auto"`` sets ``w_+`` to the inverse class frequency ratio of the batch,
  ``w_+ = N_- / N_+`` with ``N_+ = sum_i t_i`` and ``N_- = sum_i (1 - t_i)``, so both classes weigh the same and
  ``loss = (mean BCE over tumour pixels + mean BCE over background pixels) / 2`` (for binary labels). A batch with
  no tumour or no background pixel has nothing to balance: ``w_+ = 1`` (plain BCE). SeqSeg's supplement (not in
  our copy) gives its exact weighting; the paper reports that recall grows and precision falls as the positive
  weight rises (Table 4: Dice 61.47 %, recall 94.31 %).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_pair(logits: torch.Tensor, reference: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``logits`` and ``reference`` have the same shape with a batch axis."""
    if logits.shape != reference.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and reference {tuple(reference.shape)} differ in shape")
    if logits.ndim < 2:
        raise ValueError(f"expected (batch, ...) tensors with at least 2 dimensions, got {tuple(logits.shape)}")


def pixel_bce(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy ``bce_i`` (same shape as the inputs), from logits, stable for large ``|x|``."""
    check_pair(logits, reference)
    return F.binary_cross_entropy_with_logits(logits, reference.to(logits.dtype), reduction="none")


def auto_positive_weight(reference: torch.Tensor) -> float:
    """Inverse class-frequency ratio ``N_- / N_+`` of a batch of references in [0, 1]; 1 if either class is absent."""
    num_positive = float(reference.sum())
    num_negative = float(reference.numel()) - num_positive
    if num_positive <= 0.0 or num_negative <= 0.0:
        return 1.0
    return num_negative / num_positive


class BCELoss(nn.Module):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against the reference over all pixels (``bce``)."""

    def forward(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Scalar ``mean_i bce_i`` for logits and reference of the same shape ``(B, ...)``."""
        return pixel_bce(logits, reference).mean()


class WeightedBCELoss(nn.Module):
    """Class-weighted binary cross-entropy ``sum_i w_i bce_i / sum_i w_i`` (``weighted-bce``; module docstring).

    Args:
        positive_weight: weight ``w_+ > 0`` of tumour pixels (background pixels weigh 1), or ``"auto"`` for the
            batch's inverse class-frequency ratio ``N_- / N_+``.
    """

    def __init__(self, positive_weight: float | str = "auto") -> None:
        super().__init__()
        if isinstance(positive_weight, str):
            if positive_weight != "auto":
                raise ValueError(f"positive_weight must be a number > 0 or 'auto', got {positive_weight!r}")
        elif isinstance(positive_weight, bool) or not positive_weight > 0:
            raise ValueError(f"positive_weight must be a number > 0 or 'auto', got {positive_weight!r}")
        self.positive_weight: float | str = (
            positive_weight if isinstance(positive_weight, str) else float(positive_weight)
        )

    def weight_of_positives(self, reference: torch.Tensor) -> float:
        """``w_+`` for this batch: the fixed value, or :func:`auto_positive_weight` of ``reference``."""
        if isinstance(self.positive_weight, str):
            return auto_positive_weight(reference.detach())
        return self.positive_weight

    def forward(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Scalar weighted mean of the per-pixel BCE for logits and reference of the same shape ``(B, ...)``."""
        losses = pixel_bce(logits, reference)
        target = reference.to(logits.dtype)
        weights = self.weight_of_positives(target) * target + (1.0 - target)
        return (weights * losses).sum() / weights.sum()

    def extra_repr(self) -> str:
        return f"positive_weight={self.positive_weight!r}"
