"""Geometry that travels with arrays.

Two orders meet here and are never mixed silently:

* ITK / physical order ``(x, y, z)`` for size, spacing and origin of a :class:`Grid`, as SimpleITK reports them;
  the direction is ITK's 3 x 3 matrix (row-major), whose columns are the physical directions of the index axes.
  Physical coordinates are in mm in the LPS convention (DICOM, ITK).
* Array order ``(z, y, x)`` for :class:`Volume.array`, as ``SimpleITK.GetArrayFromImage`` returns it;
  :attr:`Volume.spacing_mm` follows the array order, as the style guide asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Grid:
    """The sampling grid of a 3D image in physical space.

    Attributes:
        size_xyz: number of voxels along the index axes i, j, k.
        spacing_xyz: voxel size in mm along i, j, k.
        origin_xyz: physical (LPS, mm) position of the centre of voxel (0, 0, 0).
        direction: row-major 3 x 3 direction matrix; column c is the unit vector of index axis c.
    """

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def from_image(cls, image: sitk.Image) -> Grid:
        """The grid of a SimpleITK image."""
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(
            size_xyz=tuple(int(v) for v in image.GetSize()),  # type: ignore[arg-type]
            spacing_xyz=tuple(float(v) for v in image.GetSpacing()),  # type: ignore[arg-type]
            origin_xyz=tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
            direction=tuple(float(v) for v in image.GetDirection()),
        )

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)`` of an image on this grid."""
        return (self.size_xyz[2], self.size_xyz[1], self.size_xyz[0])

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing in array order ``(z, y, x)``."""
        return (self.spacing_xyz[2], self.spacing_xyz[1], self.spacing_xyz[0])

    @property
    def direction_matrix(self) -> np.ndarray:
        """The direction as a 3 x 3 array."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def reference_image(self, pixel_id: int = sitk.sitkUInt8) -> sitk.Image:
        """An empty image on this grid (for resampling onto it)."""
        image = sitk.Image(list(self.size_xyz), pixel_id)
        self.apply_to(image)
        return image

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this grid's spacing, origin and direction on ``image`` (in place; also returned)."""
        if tuple(image.GetSize()) != self.size_xyz:
            raise ValueError(f"image size {image.GetSize()} does not match grid size {self.size_xyz}")
        image.SetSpacing(self.spacing_xyz)
        image.SetOrigin(self.origin_xyz)
        image.SetDirection(self.direction)
        return image

    def index_to_physical(self, index_xyz: np.ndarray) -> np.ndarray:
        """Physical points (N, 3) of continuous indices (N, 3), both in ``(x, y, z)`` order."""
        index = np.atleast_2d(np.asarray(index_xyz, dtype=float))
        scaled = index * np.asarray(self.spacing_xyz)
        return scaled @ self.direction_matrix.T + np.asarray(self.origin_xyz)

    def physical_to_index(self, points_xyz: np.ndarray) -> np.ndarray:
        """Continuous indices (N, 3) of physical points (N, 3), the inverse of :meth:`index_to_physical`."""
        points = np.atleast_2d(np.asarray(points_xyz, dtype=float)) - np.asarray(self.origin_xyz)
        return (points @ np.linalg.inv(self.direction_matrix).T) / np.asarray(self.spacing_xyz)

    def matches(self, other: Grid, *, tolerance_mm: float = 1e-3, tolerance_direction: float = 1e-5) -> bool:
        """True when both grids sample the same points (within tolerances)."""
        return self.mismatch(other, tolerance_mm=tolerance_mm, tolerance_direction=tolerance_direction) is None

    def mismatch(self, other: Grid, *, tolerance_mm: float = 1e-3, tolerance_direction: float = 1e-5) -> str | None:
        """A sentence naming the first difference from ``other``, or ``None`` when the grids match."""
        if self.size_xyz != other.size_xyz:
            return f"size {self.size_xyz} != {other.size_xyz}"
        if not np.allclose(self.spacing_xyz, other.spacing_xyz, atol=tolerance_mm, rtol=0):
            return f"spacing {_fmt(self.spacing_xyz)} != {_fmt(other.spacing_xyz)} mm"
        if not np.allclose(self.origin_xyz, other.origin_xyz, atol=tolerance_mm, rtol=0):
            return f"origin {_fmt(self.origin_xyz)} != {_fmt(other.origin_xyz)} mm"
        if not np.allclose(self.direction, other.direction, atol=tolerance_direction, rtol=0):
            return f"direction {_fmt(self.direction)} != {_fmt(other.direction)}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "size_xyz": list(self.size_xyz),
            "spacing_xyz": list(self.spacing_xyz),
            "origin_xyz": list(self.origin_xyz),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grid:
        """Inverse of :meth:`to_dict`."""
        return cls(
            size_xyz=tuple(int(v) for v in data["size_xyz"]),  # type: ignore[arg-type]
            spacing_xyz=tuple(float(v) for v in data["spacing_xyz"]),  # type: ignore[arg-type]
            origin_xyz=tuple(float(v) for v in data["origin_xyz"]),  # type: ignore[arg-type]
            direction=tuple(float(v) for v in data["direction"]),
        )


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array with the grid it lives on.

    Attributes:
        array: voxel values in array order ``(z, y, x)``.
        grid: the physical sampling grid.
    """

    array: np.ndarray
    grid: Grid

    def __post_init__(self) -> None:
        if self.array.shape != self.grid.shape_zyx:
            raise ValueError(f"array shape {self.array.shape} does not match grid shape {self.grid.shape_zyx}")

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order ``(z, y, x)``."""
        return self.grid.spacing_zyx

    @classmethod
    def from_image(cls, image: sitk.Image) -> Volume:
        """Copy a SimpleITK image into a volume."""
        return cls(array=sitk.GetArrayFromImage(image), grid=Grid.from_image(image))

    def to_image(self) -> sitk.Image:
        """A SimpleITK image with this volume's values and geometry (a boolean mask becomes ``uint8``)."""
        array = self.array.astype(np.uint8) if self.array.dtype == np.bool_ else self.array
        image = sitk.GetImageFromArray(array)
        return self.grid.apply_to(image)

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume on the same grid with other values."""
        return Volume(array=array, grid=self.grid)
