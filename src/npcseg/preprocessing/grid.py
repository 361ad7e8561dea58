"""The reference grid every sequence and the label are resampled onto.

The preprocessed grid keeps the reference sequence's (T2's) direction, its slices (slice spacing and slice
positions: the network is 2D and works on the T2 slices) and its physical field of view; it changes only the
in-plane sampling. Along an in-plane axis with ``n`` voxels of ``s`` mm and a requested spacing ``t``:

* new size ``n' = round(n * s / t)``;
* new spacing ``s' = n * s / n'``, so ``n' * s' = n * s``: the T2 field of view is covered exactly, edge to
  edge. ``s'`` is within ``t / (2 n')`` of ``t`` (half a voxel over the whole field of view) and equals ``t``
  whenever ``n * s / t`` is whole (a 512 x 512 T2 at 0.46875 mm with a T1 at 0.9375 mm);
* new origin moved along the axis by ``(s' - s) / 2``, so the outer voxel edges coincide with T2's.

With ``t`` equal to T2's spacing the grid is T2's grid itself.
"""

from __future__ import annotations

import math

import numpy as np

from npcseg.io.volume import Grid

IN_PLANE_AXES: tuple[int, int] = (0, 1)
"""ITK index axes (x, y) that are resampled; axis 2 (the slices) is kept."""


def in_plane_spacing_yx(grid: Grid) -> tuple[float, float]:
    """The in-plane spacing ``(y, x)`` in mm of ``grid`` (its first two index axes)."""
    return (grid.spacing_xyz[1], grid.spacing_xyz[0])


def field_of_view_yx(grid: Grid) -> tuple[float, float]:
    """The in-plane field of view ``(y, x)`` in mm, edge to edge (size times spacing)."""
    return (grid.size_xyz[1] * grid.spacing_xyz[1], grid.size_xyz[0] * grid.spacing_xyz[0])


def fit_spacing_yx(grid: Grid, slice_size: int) -> tuple[float, float]:
    """The isotropic in-plane spacing ``(y, x)`` at which the larger side of ``grid``'s field of view spans
    ``slice_size`` voxels (the smaller side is then padded), the meaning of resizing a slice to S x S."""
    spacing = max(field_of_view_yx(grid)) / slice_size
    return (spacing, spacing)


def resampled_reference_grid(reference: Grid, spacing_yx_mm: tuple[float, float]) -> Grid:
    """The reference grid resampled in-plane to about ``spacing_yx_mm``, covering the same field of view.

    Args:
        reference: the reference sequence's (T2's) grid.
        spacing_yx_mm: requested in-plane spacing ``(y, x)`` in mm, both positive.

    Returns:
        A grid with ``reference``'s direction and slices (axis 2 untouched), in-plane sizes
        ``round(n * s / t)`` (at least 1), spacings ``n * s / n'`` and the origin moved so that voxel edges of
        the first and last voxels coincide with ``reference``'s.
    """
    if len(spacing_yx_mm) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing_yx_mm):
        raise ValueError(f"in-plane spacing must be two positive numbers (y, x) in mm, got {spacing_yx_mm}")
    requested_xyz = (float(spacing_yx_mm[1]), float(spacing_yx_mm[0]))
    size = list(reference.size_xyz)
    spacing = list(reference.spacing_xyz)
    shift_index_axes = np.zeros(3)
    for axis in IN_PLANE_AXES:
        extent = reference.size_xyz[axis] * reference.spacing_xyz[axis]
        new_size = max(1, round(extent / requested_xyz[axis]))
        new_spacing = extent / new_size
        if new_size == reference.size_xyz[axis]:
            new_spacing = reference.spacing_xyz[axis]  # keep the reference's value bit for bit
        size[axis] = new_size
        spacing[axis] = new_spacing
        shift_index_axes[axis] = (new_spacing - reference.spacing_xyz[axis]) / 2.0
    origin = np.asarray(reference.origin_xyz) + reference.direction_matrix @ shift_index_axes
    if not shift_index_axes.any():
        origin = np.asarray(reference.origin_xyz)
    return Grid(
        size_xyz=(int(size[0]), int(size[1]), int(size[2])),
        spacing_xyz=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        origin_xyz=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=reference.direction,
    )


def grids_coincide(first: Grid, second: Grid) -> bool:
    """True when two grids sample the same points to within 1e-6 mm (so resampling is a copy)."""
    return first.matches(second, tolerance_mm=1e-6, tolerance_direction=1e-9)
