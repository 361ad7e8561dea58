"""Model size and cost: parameter count and floating-point operations of one forward pass.

FLOPs are counted with forward hooks on ``Conv2d``, ``ConvTranspose2d`` and ``Linear`` layers only, as
**2 x multiply-adds** (one multiply and one add per weight application); bias additions, normalisation, activations,
pooling and concatenation are not counted (together they are a few per cent of a convolutional network's cost).

* ``Conv2d``: multiply-adds = output elements x (input channels / groups) x kernel height x kernel width.
* ``ConvTranspose2d``: multiply-adds = input elements x (output channels / groups) x kernel height x kernel width
  (every input value is scattered through the whole kernel).
* ``Linear``: multiply-adds = output elements x input features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad or not trainable_only)


def _multiply_adds(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, nn.ConvTranspose2d):
        kernel = math.prod(module.kernel_size)
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.Conv2d):
        kernel = math.prod(module.kernel_size)
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Floating-point operations (2 x multiply-adds) of one forward pass on a zero input of ``input_shape``.

    Args:
        model: the network (left in its current train/eval mode; no gradients are taken).
        input_shape: full input shape including the batch, e.g. ``(1, 2, 256, 256)`` for one dual-sequence
            slice; divide by the batch size for a per-slice figure.

    Returns:
        FLOPs of the counted layers (see the module docstring for what is counted).
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * _multiply_adds(module, inputs, output)

    handles = [
        module.register_forward_hook(hook)
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
    ]
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total
