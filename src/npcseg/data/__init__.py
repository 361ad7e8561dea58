"""Training data: slices of a preprocessed cache, their sampling order and their augmentation."""

from __future__ import annotations

from npcseg.data.augmentation import AugmentationConfig, SliceTransform, apply_transform, augment, draw_transform
from npcseg.data.dataset import SliceDataset, SliceSampler, channel_indices, labelled_cases

__all__ = [
    "AugmentationConfig",
    "SliceDataset",
    "SliceSampler",
    "SliceTransform",
    "apply_transform",
    "augment",
    "channel_indices",
    "draw_transform",
    "labelled_cases",
]
