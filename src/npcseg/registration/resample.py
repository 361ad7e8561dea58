"""Resampling an image onto a grid, optionally through a transform."""

from __future__ import annotations

from typing import Literal

import SimpleITK as sitk

from npcseg.io.volume import Grid

Interpolator = Literal["linear", "nearest", "bspline"]

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


def resample_onto(
    image: sitk.Image,
    grid: Grid,
    transform: sitk.Transform | None = None,
    *,
    interpolator: Interpolator = "linear",
    default_value: float = 0.0,
    pixel_id: int | None = None,
) -> sitk.Image:
    """Sample ``image`` at the voxel centres of ``grid``.

    Args:
        image: the image to sample (any grid).
        grid: the output grid.
        transform: maps points of the output grid's physical space into ``image``'s physical space (the
            convention of a registration with ``grid``'s image fixed and ``image`` moving); identity when ``None``.
        interpolator: ``linear`` for intensities, ``nearest`` for labels.
        default_value: value outside ``image``.
        pixel_id: output pixel type (SimpleITK id); the input's type when ``None``.
    """
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"unknown interpolator {interpolator!r}; use one of {sorted(_INTERPOLATORS)}")
    return sitk.Resample(
        image,
        list(grid.size_xyz),
        transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity),
        _INTERPOLATORS[interpolator],
        list(grid.origin_xyz),
        list(grid.spacing_xyz),
        list(grid.direction),
        float(default_value),
        image.GetPixelID() if pixel_id is None else pixel_id,
    )
