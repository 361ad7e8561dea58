"""Tiny synthetic cases for the pre-processing tests, built from an analytic scene in physical space.

The scene (in mm, LPS) is a head ellipsoid, a bright "structure" sphere both sequences see, and a tumour
sphere (the label). T2 samples it on its own (possibly oblique) grid; T1 samples it on a coarser grid after
a known patient movement: with ``transform`` mapping T2 points to T1 points, T1's value at ``q`` is the
scene at ``transform^-1(q)``, so resampling T1 through ``transform`` brings it back onto the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.io.cohort import Case, load_case
from npcseg.io.images import write_image
from npcseg.io.volume import Grid


def oblique_direction(angle_x_deg: float = 15.0, angle_z_deg: float = 10.0) -> tuple[float, ...]:
    """A proper rotation (row-major) tilting the slices: about x, then about z."""
    ax, az = math.radians(angle_x_deg), math.radians(angle_z_deg)
    rot_x = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rot_z = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return tuple(float(v) for v in (rot_z @ rot_x).ravel())


IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Scene:
    """Objects in physical space (mm); centres are offsets along the T2 index axes from the T2 grid centre."""

    grid: Grid
    head_radii_mm: tuple[float, float, float] = (13.0, 12.0, 40.0)
    structure_offset_mm: tuple[float, float, float] = (-6.0, 5.0, 0.0)
    structure_radius_mm: float = 4.0
    tumour_offset_mm: tuple[float, float, float] = (4.0, -3.0, 0.0)
    tumour_radius_mm: float = 6.0

    def _local(self, points: np.ndarray, offset: tuple[float, float, float]) -> np.ndarray:
        size = np.asarray(self.grid.size_xyz, dtype=float)
        centre = self.grid.index_to_physical((size - 1) / 2)[0]
        local = (points - centre) @ self.grid.direction_matrix  # coordinates along the T2 index axes
        return local - np.asarray(offset)

    def intensity(self, points: np.ndarray, head: float, structure: float) -> np.ndarray:
        """Values at physical points ``(N, 3)``: 0 outside, ``head`` inside, ``structure`` in the sphere."""
        values = np.zeros(len(points))
        local = self._local(points, (0.0, 0.0, 0.0))
        values[np.sum((local / np.asarray(self.head_radii_mm)) ** 2, axis=1) <= 1] = head
        inside = np.linalg.norm(self._local(points, self.structure_offset_mm), axis=1) <= self.structure_radius_mm
        values[inside] = structure
        return values

    def tumour(self, points: np.ndarray) -> np.ndarray:
        """1 inside the tumour sphere, 0 outside."""
        inside = np.linalg.norm(self._local(points, self.tumour_offset_mm), axis=1) <= self.tumour_radius_mm
        return inside.astype(np.uint8)


def grid_points(grid: Grid) -> np.ndarray:
    """Physical points of every voxel centre, in array order (z, y, x) flattened."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.shape_zyx), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    return grid.index_to_physical(index)


def sample(grid: Grid, values: np.ndarray, dtype: type) -> sitk.Image:
    """An image on ``grid`` from values listed in :func:`grid_points` order."""
    return grid.apply_to(sitk.GetImageFromArray(values.reshape(grid.shape_zyx).astype(dtype)))


def coarse_grid(reference: Grid, factor: int) -> Grid:
    """The reference's field of view with ``factor`` times coarser in-plane voxels (edges aligned)."""
    size = (reference.size_xyz[0] // factor, reference.size_xyz[1] // factor, reference.size_xyz[2])
    spacing = (reference.spacing_xyz[0] * factor, reference.spacing_xyz[1] * factor, reference.spacing_xyz[2])
    shift = np.array([(spacing[0] - reference.spacing_xyz[0]) / 2, (spacing[1] - reference.spacing_xyz[1]) / 2, 0])
    origin = np.asarray(reference.origin_xyz) + reference.direction_matrix @ shift
    return Grid(size, spacing, tuple(float(v) for v in origin), reference.direction)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Built:
    """A written case and what it was made from."""

    case: Case
    scene: Scene
    t2_grid: Grid
    t1_grid: Grid
    transform: sitk.Transform


def build_case(
    folder: Path,
    *,
    size_xyz: tuple[int, int, int] = (64, 64, 6),
    spacing_xyz: tuple[float, float, float] = (0.5, 0.5, 4.0),
    origin_xyz: tuple[float, float, float] = (-80.3, -95.7, 30.2),
    direction: tuple[float, ...] = IDENTITY_DIRECTION,
    t1_factor: int = 2,
    transform: sitk.Transform | None = None,
    sequences: tuple[str, ...] = ("t1", "t2"),
    with_label: bool = True,
    scene_kwargs: dict | None = None,
    suffix: str = ".nii.gz",
) -> Built:
    """Write ``folder/{t1,t2,...,label}`` and return the case; ``transform`` maps T2 points to T1 points."""
    t2_grid = Grid(size_xyz, spacing_xyz, origin_xyz, direction)
    scene = Scene(grid=t2_grid, **(scene_kwargs or {}))
    t1_grid = coarse_grid(t2_grid, t1_factor)
    transform = transform if transform is not None else sitk.Euler3DTransform()
    folder.mkdir(parents=True, exist_ok=True)
    contrasts = {"t2": (300.0, 1000.0), "t1": (500.0, 1000.0), "t1c": (600.0, 1200.0)}
    inverse = transform.GetInverse()
    for sequence in sequences:
        grid = t2_grid if sequence == "t2" else t1_grid
        points = grid_points(grid)
        if sequence != "t2":
            points = np.array([inverse.TransformPoint(tuple(p)) for p in points])
        values = scene.intensity(points, *contrasts[sequence]) + 20.0  # background 20, not 0
        write_image(sample(grid, values, np.int16), folder / f"{sequence}{suffix}")
    if with_label:
        write_image(sample(t2_grid, scene.tumour(grid_points(t2_grid)), np.uint8), folder / f"label{suffix}")
    return Built(case=load_case(folder), scene=scene, t2_grid=t2_grid, t1_grid=t1_grid, transform=transform)
