"""Mask slices <-> planar contours in patient coordinates, on the grid of a DICOM image series.

A contour is a closed polygon in the plane of one slice, stored as an ``(N, 3)`` array of LPS points in mm (the last
point is not a repeat of the first: closure is implied, as DICOM's ``CLOSED_PLANAR`` says).

Masks become contours with :func:`skimage.measure.find_contours` at level 0.5 on each slice, padded by one voxel so
that every contour closes. The contours run half-way between voxel centres inside and outside the mask; a hole gives
an inner ring and an island inside a hole a ring inside that. Filling every ring of a slice with the even-odd rule (a
voxel centre is inside when an odd number of rings surround it), which is what planning systems do with the contours
of one ROI on one slice, restores the mask voxel for voxel: no voxel centre lies on a contour (the nearest is 0.35
voxel away), so rasterising with :func:`skimage.draw.polygon` (voxel centres inside a polygon) is exact.

Index -> physical uses the full direction matrix of the grid, so oblique series work as well as axial ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from skimage import draw, measure

from npcseg.io.volume import Grid

logger = logging.getLogger(__name__)

GRID_TOLERANCE_MM = 1e-2
"""Largest difference in origin or spacing (mm) for a mask grid to count as the series grid (NIfTI stores float32)."""

GRID_TOLERANCE_DIRECTION = 1e-4
"""Largest difference of a direction cosine for a mask grid to count as the series grid."""

SLICE_TOLERANCE = 0.25
"""Largest distance of a contour point from its slice plane, as a fraction of the slice spacing."""


@dataclass(frozen=True)
class ReferenceSeries:
    """A single-frame DICOM image series (headers only) and the grid its slices sample.

    Attributes:
        files: the image files in slice order; file ``k`` is slice ``k`` (array index z) of :attr:`grid`.
        headers: their datasets, read without pixel data.
        grid: the sampling grid: origin at the first file's ImagePositionPatient, index axes i, j along the row and
            column directions of ImageOrientationPatient, k from the first slice towards the last.
    """

    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    grid: Grid

    @classmethod
    def read(cls, files: Sequence[Path]) -> ReferenceSeries:
        """Read the headers of ``files`` (slice order, first = lowest z index) and check they form one regular grid.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: a file is not DICOM, the files belong to several series, or the slices are not equally
                spaced along a line perpendicular to the image plane (tilted or irregular series are not supported).
        """
        paths = tuple(Path(file) for file in files)
        if not paths:
            raise ValueError("the reference series has no files")
        headers = tuple(_read_header(path) for path in paths)
        return cls(files=paths, headers=headers, grid=_series_grid(paths, headers))

    @property
    def first(self) -> Dataset:
        """The first slice's header (patient, study and frame of reference are the same on all)."""
        return self.headers[0]

    @property
    def sop_instance_uids(self) -> list[str]:
        """SOPInstanceUID of each slice, in slice order."""
        return [str(header.SOPInstanceUID) for header in self.headers]

    @property
    def frame_of_reference_uid(self) -> str:
        """The series' FrameOfReferenceUID."""
        return str(self.first.FrameOfReferenceUID)


def _read_header(path: Path) -> Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DICOM file not found")
    try:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:  # no preamble / file meta (older writers): the keyword checks below still apply
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"{path}: not a readable DICOM file ({error})") from error
    for keyword in (
        "SOPInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "Rows",
        "Columns",
    ):
        if keyword not in header:
            raise ValueError(f"{path}: not an image slice with geometry ({keyword} is missing)")
    return header


def _series_grid(paths: tuple[Path, ...], headers: tuple[Dataset, ...]) -> Grid:
    first = headers[0]
    for path, header in zip(paths, headers, strict=True):
        if header.SeriesInstanceUID != first.SeriesInstanceUID:
            raise ValueError(f"{path}: belongs to series {header.SeriesInstanceUID}, not {first.SeriesInstanceUID}")
        same_plane = np.allclose(
            [float(v) for v in header.ImageOrientationPatient],
            [float(v) for v in first.ImageOrientationPatient],
            atol=1e-4,
        )
        if not same_plane or (header.Rows, header.Columns) != (first.Rows, first.Columns):
            raise ValueError(f"{path}: orientation or matrix differs from {paths[0]}; expected one regular series")
    orientation = np.asarray([float(v) for v in first.ImageOrientationPatient])
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    positions = np.asarray([[float(v) for v in header.ImagePositionPatient] for header in headers])
    if len(paths) > 1:
        offset = positions[-1] - positions[0]
        slice_spacing = float(np.linalg.norm(offset)) / (len(paths) - 1)
        if slice_spacing < 1e-6:
            raise ValueError(f"{paths[0]}: all slices of the series lie at the same position")
        slice_direction = offset / np.linalg.norm(offset)
        if abs(abs(float(slice_direction @ normal)) - 1.0) > 1e-4:
            raise ValueError(f"{paths[0]}: slices are not stacked perpendicular to the image plane (gantry tilt?)")
        expected = positions[0] + np.outer(np.arange(len(paths)), slice_spacing * slice_direction)
        worst = int(np.argmax(np.linalg.norm(positions - expected, axis=1)))
        if np.linalg.norm(positions[worst] - expected[worst]) > max(GRID_TOLERANCE_MM, 1e-2 * slice_spacing):
            raise ValueError(f"{paths[worst]}: slice position does not continue the series' regular spacing")
    else:
        slice_spacing = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        slice_direction = normal
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    direction = np.column_stack([row_direction, column_direction, slice_direction])
    return Grid(
        size_xyz=(int(first.Columns), int(first.Rows), len(paths)),
        spacing_xyz=(column_spacing, row_spacing, slice_spacing),
        origin_xyz=tuple(float(v) for v in positions[0]),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction.ravel()),
    )


def grid_mismatch(grid: Grid, reference: Grid) -> str | None:
    """A sentence naming how ``grid`` differs from ``reference`` beyond the module tolerances, or ``None``."""
    return grid.mismatch(reference, tolerance_mm=GRID_TOLERANCE_MM, tolerance_direction=GRID_TOLERANCE_DIRECTION)


def slice_polygons(slice_mask: np.ndarray) -> list[np.ndarray]:
    """Closed polygons around the foreground of a 2D mask; filling them even-odd restores the mask exactly.

    Args:
        slice_mask: ``(rows, columns)`` array; nonzero is foreground.

    Returns:
        One ``(N, 2)`` array of ``(row, column)`` continuous indices per boundary ring (outer boundaries and hole
        boundaries alike), without the repeated closing point and without collinear intermediate points.
    """
    padded = np.pad(np.asarray(slice_mask) != 0, 1).astype(np.float32)
    polygons = []
    for contour in measure.find_contours(padded, 0.5):
        ring = contour[:-1] - 1.0 if np.allclose(contour[0], contour[-1]) else contour - 1.0
        ring = _without_collinear_points(ring)
        if len(ring) >= 3:
            polygons.append(ring)
    return polygons


def _without_collinear_points(ring: np.ndarray) -> np.ndarray:
    """Drop the vertices of a closed ``(N, 2)`` ring that lie on the line through their neighbours (and repeats)."""
    previous, following = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
    incoming, outgoing = ring - previous, following - ring
    cross = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]
    return ring[np.abs(cross) > 1e-9]


def fill_polygons(polygons: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Even-odd fill of ``(N, 2)`` ``(row, column)`` polygons: a pixel is set when its centre lies in an odd number.

    Args:
        polygons: polygons in continuous ``(row, column)`` index; parts outside the slice are clipped.
        shape: ``(rows, columns)`` of the slice.

    Returns:
        Boolean ``(rows, columns)`` array.
    """
    filled = np.zeros(shape, dtype=bool)
    for polygon in polygons:
        rows, columns = draw.polygon(polygon[:, 0], polygon[:, 1], shape=shape)
        filled[rows, columns] ^= True
    return filled


def mask_to_contours(mask: np.ndarray, grid: Grid) -> dict[int, list[np.ndarray]]:
    """The planar contours of a 3D mask, slice by slice, in patient coordinates.

    Args:
        mask: ``(z, y, x)`` array on ``grid``; nonzero is foreground.
        grid: the mask's grid.

    Returns:
        For each slice index ``k`` with foreground, its rings as ``(N, 3)`` LPS points in mm
        (see :func:`slice_polygons`).
    """
    if mask.shape != grid.shape_zyx:
        raise ValueError(f"mask shape {mask.shape} does not match grid shape {grid.shape_zyx}")
    contours: dict[int, list[np.ndarray]] = {}
    for k in range(mask.shape[0]):
        if not mask[k].any():
            continue
        rings = []
        for polygon in slice_polygons(mask[k]):
            index_xyz = np.column_stack([polygon[:, 1], polygon[:, 0], np.full(len(polygon), float(k))])
            rings.append(grid.index_to_physical(index_xyz))
        contours[k] = rings
    return contours


def contours_to_mask(contours: Iterable[np.ndarray], grid: Grid, *, source: str = "contours") -> np.ndarray:
    """Rasterise planar contours (``(N, 3)`` LPS mm) onto ``grid``, even-odd within each slice.

    A contour belongs to the slice whose plane it lies on (within :data:`SLICE_TOLERANCE` of the slice spacing);
    contours between slices or outside the grid are skipped with a warning, and when every contour is skipped the
    contours do not belong to this grid and a ``ValueError`` naming ``source`` is raised.

    Returns:
        Boolean ``(z, y, x)`` mask on ``grid``.
    """
    rings_by_slice: dict[int, list[np.ndarray]] = {}
    num_contours = 0
    num_skipped = 0
    for points in contours:
        num_contours += 1
        index_xyz = grid.physical_to_index(points)
        slice_position = float(np.mean(index_xyz[:, 2]))
        k = round(slice_position)
        off_plane = float(np.max(np.abs(index_xyz[:, 2] - k)))
        if off_plane > SLICE_TOLERANCE or not 0 <= k < grid.size_xyz[2] or len(points) < 3:
            num_skipped += 1
            continue
        rings_by_slice.setdefault(k, []).append(index_xyz[:, [1, 0]])
    if num_skipped:
        logger.warning(
            "%s: %d of %d contours are not on a slice of the grid; skipped", source, num_skipped, num_contours
        )
        if num_skipped == num_contours:
            raise ValueError(f"{source}: none of its {num_contours} contours lies on a slice of the reference series")
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    for k, rings in rings_by_slice.items():
        mask[k] = fill_polygons(rings, grid.shape_zyx[1:])
    return mask
