"""Per-volume intensity normalisation (METHODS.md method 1, pre-processing step 3).

* ``minmax``: ``(x - min) / (max - min)`` over the whole volume, so values span exactly [0, 1] (DEU).
* ``percentile``: clip to the ``[p_low, p_high]`` percentiles ``[a, b]`` of the volume, then
  ``(x - a) / (b - a)``; robust to a few very bright voxels (flow artefacts, fat).
* ``dataset_max``: ``x / M_s`` with ``M_s`` the maximum intensity of sequence ``s`` over the whole training
  dataset (SeqSeg), clipped to [0, 1]; the same ``M_s`` serves every case, including new patients, so relative
  brightness between patients is kept. ``M_s`` is measured by :func:`dataset_maxima` and recorded in the
  preprocessing config.
* ``none``: values unchanged (cast to float32), for data normalised elsewhere.

A constant volume (``max == min``) maps to all zeros rather than dividing by zero. The fitted parameters
travel in the case record so the mapping can be reproduced or undone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

NormalizationMethod = Literal["minmax", "percentile", "dataset_max", "none"]
NORMALIZATION_METHODS: tuple[str, ...] = ("minmax", "percentile", "dataset_max", "none")


@dataclass(frozen=True)
class IntensityScaling:
    """A fitted intensity mapping ``x -> (clip(x, low, high) - low) / (high - low)``.

    Attributes:
        method: the method that produced it (``none`` means the identity, ``low``/``high`` unused).
        low: intensity mapped to 0 (the volume's minimum or lower percentile).
        high: intensity mapped to 1 (the volume's maximum or upper percentile).
    """

    method: str
    low: float
    high: float

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The normalised values as float32, same shape as ``array``."""
        values = np.asarray(array, dtype=np.float32)
        if self.method == "none":
            return values.copy()
        if not self.high > self.low:
            return np.zeros_like(values)
        clipped = np.clip(values, self.low, self.high)
        scaled = (clipped - np.float32(self.low)) / np.float32(self.high - self.low)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"method": self.method, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntensityScaling:
        """Inverse of :meth:`to_dict`."""
        return cls(method=str(data["method"]), low=float(data["low"]), high=float(data["high"]))


def fit_normalization(
    array: np.ndarray,
    method: str,
    *,
    percentile_low: float = 0.5,
    percentile_high: float = 99.5,
    dataset_maximum: float | None = None,
) -> IntensityScaling:
    """Fit the normalisation of one volume.

    Args:
        array: the volume's intensities (any shape); must be finite.
        method: ``minmax``, ``percentile``, ``dataset_max`` or ``none``.
        percentile_low: lower percentile in [0, 100] (``percentile`` only).
        percentile_high: upper percentile in [0, 100], above ``percentile_low`` (``percentile`` only).
        dataset_maximum: the sequence's maximum over the dataset, positive (``dataset_max`` only, required).
    """
    if method not in NORMALIZATION_METHODS:
        raise ValueError(f"unknown normalisation {method!r}; use one of {list(NORMALIZATION_METHODS)}")
    if method == "none":
        return IntensityScaling(method="none", low=0.0, high=1.0)
    if method == "dataset_max":
        if dataset_maximum is None or not (math.isfinite(dataset_maximum) and dataset_maximum > 0):
            raise ValueError(
                f"dataset_max normalisation needs a positive dataset maximum, got {dataset_maximum}; "
                "`npcseg preprocess` measures it over the cohort"
            )
        return IntensityScaling(method="dataset_max", low=0.0, high=float(dataset_maximum))
    values = np.asarray(array)
    if values.size == 0:
        raise ValueError("cannot normalise an empty volume")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"volume has {int(np.count_nonzero(~np.isfinite(values)))} NaN or infinite voxels")
    if method == "minmax":
        return IntensityScaling(method="minmax", low=float(values.min()), high=float(values.max()))
    if not 0.0 <= percentile_low < percentile_high <= 100.0:
        raise ValueError(
            f"percentiles must satisfy 0 <= low < high <= 100, got low={percentile_low}, high={percentile_high}"
        )
    low, high = np.percentile(values, [percentile_low, percentile_high])
    return IntensityScaling(method="percentile", low=float(low), high=float(high))


def normalize(
    array: np.ndarray,
    method: str,
    *,
    percentile_low: float = 0.5,
    percentile_high: float = 99.5,
) -> tuple[np.ndarray, IntensityScaling]:
    """Fit and apply the normalisation of one volume; returns the float32 values and the fitted mapping."""
    scaling = fit_normalization(array, method, percentile_low=percentile_low, percentile_high=percentile_high)
    return scaling.apply(array), scaling


def dataset_maxima(image_paths: Iterable[tuple[str, Path]]) -> dict[str, float]:
    """The maximum intensity of each sequence over a dataset's raw image files.

    Args:
        image_paths: ``(sequence, path)`` pairs, e.g. every case's T1, T1c and T2 files.

    Returns:
        sequence -> maximum voxel value over its files. (Linear resampling never exceeds the maximum of its
        input, so this bounds the resampled volumes too.)

    Raises:
        ValueError: a file holds NaN/Inf or a sequence's maximum is not positive (naming the file/sequence).
    """
    maxima: dict[str, float] = {}
    statistics = sitk.StatisticsImageFilter()
    for sequence, path in image_paths:
        statistics.Execute(sitk.ReadImage(str(path), sitk.sitkFloat32))
        maximum = statistics.GetMaximum()
        if not math.isfinite(maximum):
            raise ValueError(f"{path}: intensities are not finite (maximum {maximum})")
        maxima[sequence] = max(maxima.get(sequence, -math.inf), maximum)
    for sequence, maximum in maxima.items():
        if not maximum > 0:
            raise ValueError(
                f"sequence {sequence}: dataset maximum {maximum} is not positive; use another normalisation"
            )
    return maxima
