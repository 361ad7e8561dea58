"""Target registration error (TRE) against a known transform, and the points to measure it at.

TRE at a fixed-image point p is ``|estimated(p) - truth(p)|`` in mm, both transforms mapping fixed (T2) physical
points to moving physical points. For rigid transforms this equals the distance, in the fixed image, between where
the registration puts a moving-image structure and where it truly is.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from npcseg.io.volume import Grid

Region = Literal["head", "label"]
"""``head``: voxels of the fixed image above its Otsu threshold; ``label``: the label's bounding box."""


def transform_points(transform: sitk.Transform, points_xyz: np.ndarray) -> np.ndarray:
    """Map physical points (N, 3) through ``transform``.

    Affine-family transforms (Euler, versor, similarity, affine) are applied as one matrix product; any other
    transform point by point.
    """
    points = np.atleast_2d(np.asarray(points_xyz, dtype=float))
    if points.shape[1] != 3:
        raise ValueError(f"expected points of shape (N, 3), got {points.shape}")
    concrete: Any = transform.Downcast() if hasattr(transform, "Downcast") else transform
    if all(hasattr(concrete, name) for name in ("GetMatrix", "GetCenter", "GetTranslation")):
        matrix = np.asarray(concrete.GetMatrix()).reshape(3, 3)
        centre = np.asarray(concrete.GetCenter())
        translation = np.asarray(concrete.GetTranslation())
        return (points - centre) @ matrix.T + centre + translation
    return np.array([transform.TransformPoint(tuple(point)) for point in points], dtype=float).reshape(-1, 3)


def target_registration_error(estimated: sitk.Transform, truth: sitk.Transform, points_xyz: np.ndarray) -> np.ndarray:
    """TRE in mm at each point.

    Args:
        estimated: the registration's transform (fixed -> moving physical points).
        truth: the true transform, same convention.
        points_xyz: (N, 3) fixed-image physical points (LPS mm).

    Returns:
        (N,) distances in mm between ``estimated(p)`` and ``truth(p)``.
    """
    return np.linalg.norm(transform_points(estimated, points_xyz) - transform_points(truth, points_xyz), axis=1)


def mask_points(mask: sitk.Image, max_points: int = 20_000, seed: int = 0) -> np.ndarray:
    """Physical points (N, 3) of the voxel centres where ``mask`` is non-zero, at most ``max_points``.

    A larger mask is subsampled uniformly at random (seeded). An empty mask gives an empty (0, 3) array.
    """
    indices_zyx = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)
    if len(indices_zyx) > max_points:
        rng = np.random.default_rng(seed)
        indices_zyx = indices_zyx[np.sort(rng.choice(len(indices_zyx), size=max_points, replace=False))]
    return Grid.from_image(mask).index_to_physical(indices_zyx[:, ::-1]) if len(indices_zyx) else np.zeros((0, 3))


def head_mask(fixed: sitk.Image) -> sitk.Image:
    """Voxels of ``fixed`` above its Otsu threshold (the head, without the air around it), as UInt8."""
    array = sitk.GetArrayViewFromImage(fixed).astype(np.float64)
    if array.max() <= array.min():
        raise ValueError("the fixed image is constant; there is no head region to measure TRE in")
    from skimage.filters import threshold_otsu

    mask = sitk.GetImageFromArray((array > threshold_otsu(array)).astype(np.uint8))
    mask.CopyInformation(fixed)
    return mask


def bounding_box_mask(label: sitk.Image) -> sitk.Image:
    """A UInt8 mask of the axis-aligned (index space) bounding box of ``label``'s non-zero voxels."""
    array = sitk.GetArrayViewFromImage(label) != 0
    if not array.any():
        raise ValueError("the label is empty; there is no label region to measure TRE in")
    box = np.zeros(array.shape, dtype=np.uint8)
    nonzero = np.argwhere(array)
    low, high = nonzero.min(axis=0), nonzero.max(axis=0) + 1
    box[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = 1
    mask = sitk.GetImageFromArray(box)
    mask.CopyInformation(label)
    return mask


def evaluation_points(
    fixed: sitk.Image, region: Region = "head", label: sitk.Image | None = None, max_points: int = 20_000
) -> np.ndarray:
    """Fixed-image physical points (N, 3) to measure TRE at.

    Args:
        fixed: the fixed (T2) image.
        region: ``head`` (Otsu foreground of ``fixed``) or ``label`` (bounding box of ``label``).
        label: the label on the fixed grid; required for ``label``.
        max_points: subsample to at most this many points.
    """
    if region == "head":
        return mask_points(head_mask(fixed), max_points)
    if region == "label":
        if label is None:
            raise ValueError("region 'label' needs a label image")
        return mask_points(bounding_box_mask(label), max_points)
    raise ValueError(f"unknown TRE region {region!r}; use 'head' or 'label'")
