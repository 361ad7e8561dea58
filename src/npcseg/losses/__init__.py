"""Segmentation losses on logits, by name.

Adding a loss: one module with an ``nn.Module`` taking ``(logits, reference)``, plus one entry in ``_LOSSES``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from npcseg.losses.cross_entropy import BCELoss, WeightedBCELoss
from npcseg.losses.dbw import DBWLoss, border_weight_map
from npcseg.losses.dice import DiceLoss, soft_dice

_LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "dbw": DBWLoss,
    "dice": DiceLoss,
    "weighted-bce": WeightedBCELoss,
}


def loss_names() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_LOSSES)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss ``name`` with its keyword arguments (e.g. ``build_loss("dice", batch_dice=True)``).

    Raises:
        ValueError: on an unknown name or keyword argument.
    """
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {loss_names()}")
    try:
        return _LOSSES[name](**kwargs)
    except TypeError as error:
        raise ValueError(f"loss {name!r}: bad arguments {sorted(kwargs)}: {error}") from error


__all__ = [
    "BCELoss",
    "DBWLoss",
    "DiceLoss",
    "WeightedBCELoss",
    "border_weight_map",
    "build_loss",
    "loss_names",
    "soft_dice",
]
