"""Training-time augmentation of 2D slices: random flips and random re-scaling (METHODS.md method 1, Training:
"augmentation by flipping and re-scaling"; the paper gives no probabilities or ranges, so these are ours).

One random geometric transform is drawn per slice and applied IDENTICALLY to the image channels and the label:

* left-right flip (array axis x, the last one) with probability ``flip_left_right_probability``;
* up-down flip (axis y) with probability ``flip_up_down_probability`` (off by default: the anatomy is not
  symmetric top to bottom);
* re-scaling by a factor ``s`` drawn uniformly from ``scale_range`` (with probability ``scale_probability``),
  about the slice centre, keeping the slice size: ``s > 1`` zooms in (content grows, the border is cut off),
  ``s < 1`` zooms out (content shrinks, the border is filled with 0, the background value of min-max normalised
  slices). A pixel centre at ``(y, x)`` moves to ``c + s * ((y, x) - c)`` with ``c = ((H - 1) / 2, (W - 1) / 2)``.
  The image is interpolated bilinearly; the label by nearest neighbour (``label_interpolation="nearest"``) or
  linearly and then thresholded at 0.5 (``"linear_threshold"``).

Every random number comes from the ``torch.Generator`` passed in, and the same count of numbers is drawn whatever
the outcome, so a run is reproducible from the generator's state (which the trainer saves for resuming).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as functional

LabelInterpolation = Literal["nearest", "linear_threshold"]


@dataclass(frozen=True)
class AugmentationConfig:
    """Random flips and re-scaling of training slices (identical transform for image and label)."""

    enabled: bool = True
    """Augment training slices at all (validation slices never are)."""
    flip_left_right_probability: float = 0.5
    """Probability of mirroring a slice left-right (array axis x)."""
    flip_up_down_probability: float = 0.0
    """Probability of mirroring a slice up-down (array axis y); 0 by default (anatomy is not up-down symmetric)."""
    scale_probability: float = 1.0
    """Probability of re-scaling a slice (otherwise its scale stays 1)."""
    scale_range: tuple[float, float] = (0.9, 1.1)
    """Zoom factors ``(low, high)``, drawn uniformly; > 1 zooms in, < 1 zooms out; about the slice centre."""
    label_interpolation: LabelInterpolation = "nearest"
    """How the label is re-sampled when re-scaled: ``nearest`` or ``linear_threshold`` (linear, then >= 0.5)."""

    def __post_init__(self) -> None:
        for name in ("flip_left_right_probability", "flip_up_down_probability", "scale_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1], got {value}")
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ValueError(
                f"augmentation scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}"
            )
        if self.label_interpolation not in ("nearest", "linear_threshold"):
            raise ValueError(
                f"augmentation label_interpolation must be 'nearest' or 'linear_threshold', "
                f"got {self.label_interpolation!r}"
            )


@dataclass(frozen=True)
class SliceTransform:
    """One drawn geometric transform of a slice.

    Attributes:
        flip_left_right: mirror along x (the last axis).
        flip_up_down: mirror along y.
        scale: zoom factor about the slice centre (1 = none).
    """

    flip_left_right: bool = False
    flip_up_down: bool = False
    scale: float = 1.0


def draw_transform(config: AugmentationConfig, generator: torch.Generator) -> SliceTransform:
    """Draw one transform; always consumes four uniform numbers from ``generator``."""
    draws = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    low, high = config.scale_range
    scale = low + (high - low) * draws[3] if draws[2] < config.scale_probability else 1.0
    return SliceTransform(
        flip_left_right=draws[0] < config.flip_left_right_probability,
        flip_up_down=draws[1] < config.flip_up_down_probability,
        scale=float(scale),
    )


def _rescale(tensor: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    """Zoom ``(C, H, W)`` by ``scale`` about its centre, same size, zeros outside (``grid_sample``)."""
    theta = torch.tensor([[1.0 / scale, 0.0, 0.0], [0.0, 1.0 / scale, 0.0]], dtype=tensor.dtype).unsqueeze(0)
    grid = functional.affine_grid(theta, [1, *tensor.shape], align_corners=False)
    return functional.grid_sample(tensor.unsqueeze(0), grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


def apply_transform(
    image: torch.Tensor,
    label: torch.Tensor,
    transform: SliceTransform,
    label_interpolation: LabelInterpolation = "nearest",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to an image ``(C, H, W)`` and its label ``(1, H, W)`` (values 0 / 1), identically.

    Returns:
        The transformed image (float, bilinear) and label (same dtype as given, values 0 / 1).
    """
    if image.ndim != 3 or label.ndim != 3 or image.shape[-2:] != label.shape[-2:]:
        raise ValueError(f"expected image (C, H, W) and label (1, H, W) of one size, got {image.shape}, {label.shape}")
    if transform.flip_left_right:
        image, label = torch.flip(image, dims=(-1,)), torch.flip(label, dims=(-1,))
    if transform.flip_up_down:
        image, label = torch.flip(image, dims=(-2,)), torch.flip(label, dims=(-2,))
    if transform.scale != 1.0:
        image = _rescale(image.float(), transform.scale, "bilinear")
        label_float = label.float()
        if label_interpolation == "nearest":
            resampled = _rescale(label_float, transform.scale, "nearest")
        else:
            resampled = (_rescale(label_float, transform.scale, "bilinear") >= 0.5).float()
        label = resampled.to(label.dtype)
    return image, label


def augment(
    image: torch.Tensor, label: torch.Tensor, config: AugmentationConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a transform from ``generator`` and apply it to ``image`` ``(C, H, W)`` and ``label`` ``(1, H, W)``.

    With ``config.enabled`` false the inputs come back unchanged and nothing is drawn.
    """
    if not config.enabled:
        return image, label
    return apply_transform(image, label, draw_transform(config, generator), config.label_interpolation)
