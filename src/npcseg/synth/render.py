"""Rendering layered tissues onto an image grid at the grid's own voxel centres.

A :class:`Layer` is a shape with one or more nested tissues (``tissues[k]`` fills the points deeper than
``depths_mm[k]`` below the surface: skin, then fat, then muscle under it; cortex, then marrow). Layers are
painted in order, each over the previous ones, with a partial-volume fraction that ramps linearly over one
in-plane voxel across the surface (the box-filter response of a voxel to a flat edge). Rendering evaluates the
analytic shapes at each grid's voxel centres mapped into the anatomy frame, so a T1 grid moved against the
anatomy samples the anatomy directly: no image is ever resampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from npcseg.io.volume import Grid
from npcseg.synth.shapes import LatticeField, Shape

SLAB_VOXELS = 1 << 19
"""Voxels rendered at once: small temporaries stay in cache and in the allocator's pool."""


@dataclass(frozen=True, eq=False)
class Layer:
    """Nested tissues filling a shape.

    Attributes:
        shape: the outer surface.
        tissues: tissue names from the surface inwards.
        depths_mm: depth below the surface where each tissue starts (first 0, increasing).
        modulation: optional field in [0, 1] that moves the intensity between the tissue's low and high value
            (tumour heterogeneity); ``None``: the low value.
    """

    shape: Shape
    tissues: tuple[str, ...]
    depths_mm: tuple[float, ...] = (0.0,)
    modulation: LatticeField | None = None

    def __post_init__(self) -> None:
        assert len(self.tissues) == len(self.depths_mm), (self.tissues, self.depths_mm)


@dataclass(frozen=True, eq=False)
class Rendering:
    """What :func:`render` returns, arrays in ``(z, y, x)`` order on the rendered grid.

    Attributes:
        intensity: noiseless signal (float32), or ``None`` when no intensities were given.
        tissue: index into the tissue list of the tissue covering more than half of each voxel (uint8).
        tissue_under: the tissue map just before the first layer of ``label_from`` was painted (uint8).
    """

    intensity: np.ndarray | None
    tissue: np.ndarray
    tissue_under: np.ndarray


def index_to_anatomy_matrix(grid: Grid, physical_to_anatomy: np.ndarray) -> np.ndarray:
    """The 4 x 4 affine from continuous index ``(i, j, k, 1)`` of ``grid`` to anatomy coordinates.

    Args:
        grid: the image grid.
        physical_to_anatomy: 4 x 4 affine from the grid's physical space to the anatomy frame.
    """
    index_to_physical = np.eye(4)
    index_to_physical[:3, :3] = grid.direction_matrix @ np.diag(grid.spacing_xyz)
    index_to_physical[:3, 3] = grid.origin_xyz
    return physical_to_anatomy @ index_to_physical


def _index_box(
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]],
    anatomy_to_index: np.ndarray,
    size_xyz: tuple[int, int, int],
) -> tuple[slice, slice, slice] | None:
    """The index box ``(k, j, i)`` slices of the grid voxels whose centres can lie inside ``bounds``."""
    low, high = np.asarray(bounds[0], dtype=float), np.asarray(bounds[1], dtype=float)
    low, high = np.maximum(low, -1e5), np.minimum(high, 1e5)
    corners = np.array(
        [[c0, c1, c2, 1.0] for c0 in (low[0], high[0]) for c1 in (low[1], high[1]) for c2 in (low[2], high[2])]
    )
    indices = corners @ anatomy_to_index.T
    start = np.maximum(np.floor(indices[:, :3].min(axis=0)).astype(int) - 1, 0)
    stop = np.minimum(np.ceil(indices[:, :3].max(axis=0)).astype(int) + 2, np.asarray(size_xyz))
    if np.any(stop <= start):
        return None
    return (slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0]))


def _coordinates(matrix: np.ndarray, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anatomy coordinates (x, y, z) of the voxel centres in ``box``; axis-aligned terms stay
    broadcastable."""
    k = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None, None]
    j = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :, None]
    i = np.arange(box[2].start, box[2].stop, dtype=np.float32)[None, None, :]
    result = []
    for row in range(3):
        value: np.ndarray = np.full((1, 1, 1), matrix[row, 3], dtype=np.float32)
        for index, column in ((i, 0), (j, 1), (k, 2)):
            coefficient = matrix[row, column]
            if abs(coefficient) > 1e-12:
                value = value + index * np.float32(coefficient)
        result.append(value)
    return result[0], result[1], result[2]


def render(
    layers: Sequence[Layer],
    grid: Grid,
    physical_to_anatomy: np.ndarray,
    tissue_names: Sequence[str],
    intensities: Mapping[str, tuple[float, float]] | None,
    *,
    label_from: int | None = None,
) -> Rendering:
    """Paint ``layers`` onto ``grid``.

    Args:
        layers: painted in order, each over the previous.
        grid: the output grid.
        physical_to_anatomy: 4 x 4 affine from the grid's physical space to the anatomy frame.
        tissue_names: the tissue list that the tissue map indexes (index 0 is the background).
        intensities: tissue -> (low, high) signal for the rendered sequence (high is reached where a layer's
            modulation is 1); ``None`` renders the tissue map only.
        label_from: index of the first layer whose pre-paint tissue map is kept as ``tissue_under``.

    Returns:
        The noiseless intensity and the tissue maps.
    """
    matrix = index_to_anatomy_matrix(grid, physical_to_anatomy)
    anatomy_to_index = np.linalg.inv(matrix)
    shape_zyx = grid.shape_zyx
    edge_width = np.float32(max(grid.spacing_xyz[0], grid.spacing_xyz[1]))
    tissue_index = {name: index for index, name in enumerate(tissue_names)}
    intensity = np.zeros(shape_zyx, dtype=np.float32) if intensities is not None else None
    tissue = np.zeros(shape_zyx, dtype=np.uint8)
    tissue_under = tissue
    boxes = [_index_box(layer.shape.bounds(), anatomy_to_index, grid.size_xyz) for layer in layers]
    slab = max(1, SLAB_VOXELS // (shape_zyx[1] * shape_zyx[2]))
    for slab_start in range(0, shape_zyx[0], slab):
        slab_stop = min(slab_start + slab, shape_zyx[0])
        for layer_number, (layer, full_box) in enumerate(zip(layers, boxes, strict=True)):
            if layer_number == label_from and slab_start == 0:
                tissue_under = tissue.copy()
            elif layer_number == label_from:
                tissue_under[slab_start:slab_stop] = tissue[slab_start:slab_stop]
            if full_box is None:
                continue
            k_start, k_stop = max(full_box[0].start, slab_start), min(full_box[0].stop, slab_stop)
            if k_stop <= k_start:
                continue
            box = (slice(k_start, k_stop), full_box[1], full_box[2])
            _paint(layer, box, matrix, edge_width, tissue_index, intensities, intensity, tissue)
    return Rendering(intensity=intensity, tissue=tissue, tissue_under=tissue_under)


def _paint(
    layer: Layer,
    box: tuple[slice, slice, slice],
    matrix: np.ndarray,
    edge_width: np.float32,
    tissue_index: Mapping[str, int],
    intensities: Mapping[str, tuple[float, float]] | None,
    intensity: np.ndarray | None,
    tissue: np.ndarray,
) -> None:
    x, y, z = _coordinates(matrix, box)
    distance = layer.shape.distance(x, y, z)
    box_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    distance = np.broadcast_to(distance, box_shape)
    modulation = None
    if layer.modulation is not None and intensity is not None:
        inside = distance < edge_width
        modulation = np.zeros(box_shape, dtype=np.float32)
        if inside.any():
            xs, ys, zs = (np.broadcast_to(axis, box_shape)[inside] for axis in (x, y, z))
            modulation[inside] = layer.modulation(xs, ys, zs)
    tissue_view = tissue[box]
    intensity_view = intensity[box] if intensity is not None else None
    fraction = np.empty(box_shape, dtype=np.float32)
    for name, depth in zip(layer.tissues, layer.depths_mm, strict=True):
        # Partial-volume fraction: 1 deeper than half a voxel inside the tissue's surface, 0 half a voxel
        # outside.
        np.multiply(distance, np.float32(-1.0) / edge_width, out=fraction)
        fraction += np.float32(0.5) - np.float32(depth) / edge_width
        tissue_view[fraction > 0.5] = tissue_index[name]
        if intensity_view is None or intensities is None:
            continue
        np.clip(fraction, 0, 1, out=fraction)
        low, high = intensities[name]
        if modulation is not None and high != low:
            update = np.float32(low) + np.float32(high - low) * modulation
            update -= intensity_view
        else:
            update = np.float32(low) - intensity_view
        update *= fraction
        intensity_view += update
