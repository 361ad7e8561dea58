"""Building a 3D volume from the files of one DICOM series, with its geometry taken from the headers.

The slice order and the grid come from the headers alone, never from file names or ``InstanceNumber``:

* the slice normal is ``n = r x c``, the cross product of the row and column direction cosines of
  ``ImageOrientationPatient`` (orthonormalised);
* each slice's position along the normal is ``d = p . n`` with ``p`` its ``ImagePositionPatient``; slices are
  sorted by increasing ``d``, so the volume's z axis points along ``n`` and the grid is right-handed;
* the grid's origin is the first slice's position, its direction the columns ``(r, c, n)``, its spacing
  ``(column spacing, row spacing, (d_last - d_first) / (N - 1))`` in mm (a single slice uses
  ``SpacingBetweenSlices`` or ``SliceThickness``).

An oblique series keeps its orientation. A series that does not form one regular stack is refused with a message
that names it by number and description (never by patient data): missing slices (a step larger than 1.5 times the
median step), steps that vary by more than 1 % (or 0.01 mm), slices sharing a position (several echoes, phases or
stacks in one series), mixed orientations, pixel spacings or image sizes, slices shifted within their plane
(gantry tilt), multi-frame (enhanced) images, and missing geometry attributes. Pixel values are decoded by
SimpleITK's GDCM reader, which applies ``RescaleSlope`` / ``RescaleIntercept``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.dicom.series import DicomSeries, SliceHeader
from npcseg.io.volume import Grid

ORIENTATION_TOLERANCE = 1e-4
"""Largest difference of direction cosines between slices of one series."""
GAP_FACTOR = 1.5
"""A step between neighbouring slices larger than this times the median step means missing slices."""
STEP_RELATIVE_TOLERANCE = 0.01
"""Steps may differ from the median step by this fraction (or :data:`STEP_ABSOLUTE_TOLERANCE_MM`, the larger)."""
STEP_ABSOLUTE_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class SeriesGeometry:
    """The grid of a series and its files in slice order.

    Attributes:
        grid: the sampling grid (ITK order, LPS mm).
        files: one file per slice; ``files[k]`` is slice ``k`` of the volume's z axis.
        positions_mm: each slice's position along the normal, ``d = p . n`` (mm), increasing.
    """

    grid: Grid
    files: tuple[Path, ...]
    positions_mm: tuple[float, ...]


@dataclass(frozen=True)
class DicomVolume:
    """A series read into an image.

    Attributes:
        image: the 3D image, on :attr:`geometry`'s grid.
        geometry: the grid and the files in slice order.
    """

    image: sitk.Image
    geometry: SeriesGeometry


def series_geometry(series: DicomSeries) -> SeriesGeometry:
    """Check that ``series`` is one regular stack of slices and compute its grid (headers only).

    Raises:
        ValueError: naming the series (:attr:`DicomSeries.label`) and what is inconsistent.
    """

    def refuse(problem: str) -> ValueError:
        return ValueError(f"{series.label}: {problem}; cannot build a volume from it")

    slices = series.slices
    multi_frame = [header for header in slices if header.num_frames > 1]
    if multi_frame:
        raise refuse(f"multi-frame (enhanced) images ({multi_frame[0].num_frames} frames) are not supported")
    for attribute in ("position_mm", "orientation", "pixel_spacing_mm"):
        lacking = sum(getattr(header, attribute) is None for header in slices)
        if lacking:
            name = {"position_mm": "ImagePositionPatient", "orientation": "ImageOrientationPatient"}.get(
                attribute, "PixelSpacing"
            )
            raise refuse(f"{lacking} of {len(slices)} file(s) lack {name}")
    sizes = sorted({(header.rows, header.columns) for header in slices})
    if len(sizes) > 1:
        raise refuse(f"mixed image sizes (rows x columns: {', '.join(f'{r}x{c}' for r, c in sizes)})")
    orientations = np.array([header.orientation for header in slices], dtype=float)
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        distinct = len({tuple(np.round(row, 3)) for row in orientations})
        raise refuse(f"mixed slice orientations ({distinct} distinct ImageOrientationPatient values)")
    spacings = np.array([header.pixel_spacing_mm for header in slices], dtype=float)
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        raise refuse(f"mixed pixel spacings ({sorted({tuple(row) for row in spacings.tolist()})} mm)")

    row, column, normal = _orthonormal_axes(orientations[0], refuse)
    positions = np.array([header.position_mm for header in slices], dtype=float)
    along = positions @ normal
    order = sorted(range(len(slices)), key=lambda i: (along[i], slices[i].instance_number or 0))
    positions, along = positions[order], along[order]
    ordered: list[SliceHeader] = [slices[i] for i in order]
    row_spacing, column_spacing = (float(v) for v in spacings[0])
    step = _slice_step(ordered, along, refuse)

    in_plane = (positions - positions[0]) @ np.column_stack([row, column])
    tolerance = max(1e-3, 0.05 * min(row_spacing, column_spacing))
    if np.abs(in_plane).max() > tolerance:
        raise refuse(
            f"slices are shifted within their plane by up to {np.abs(in_plane).max():.3g} mm (gantry tilt or "
            "sheared stack), not stacked along the slice normal"
        )
    direction = np.column_stack([row, column, normal])
    grid = Grid(
        size_xyz=(ordered[0].columns, ordered[0].rows, len(ordered)),
        spacing_xyz=(column_spacing, row_spacing, step),
        origin_xyz=tuple(float(v) for v in positions[0]),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction.ravel()),
    )
    return SeriesGeometry(
        grid=grid, files=tuple(header.path for header in ordered), positions_mm=tuple(float(v) for v in along)
    )


def _orthonormal_axes(orientation: np.ndarray, refuse: Callable[[str], ValueError]) -> tuple[np.ndarray, ...]:
    row = orientation[:3] / np.linalg.norm(orientation[:3])
    column = orientation[3:] - (orientation[3:] @ row) * row
    if abs(orientation[3:] @ row) > 1e-3 or np.linalg.norm(column) < 1e-6:
        raise refuse(f"ImageOrientationPatient {list(orientation)} has non-orthogonal row and column directions")
    column = column / np.linalg.norm(column)
    return row, column, np.cross(row, column)


def _slice_step(ordered: list[SliceHeader], along: np.ndarray, refuse: Callable[[str], ValueError]) -> float:
    """The slice spacing (mm) after checking for duplicate, missing and irregular slices."""
    if len(ordered) == 1:
        header = ordered[0]
        return float(header.spacing_between_slices_mm or header.slice_thickness_mm or 1.0)
    steps = np.diff(along)
    median = float(np.median(steps))
    duplicates = int(np.count_nonzero(steps < max(1e-4, 1e-3 * median)))
    if duplicates or median <= 0:
        raise refuse(
            f"{duplicates or len(ordered) - 1} slice(s) share a position with another (several echoes, phases or "
            "stacks in one series?)"
        )
    gaps = np.flatnonzero(steps > GAP_FACTOR * median)
    if gaps.size:
        first = int(gaps[0])
        missing = int(sum(round(steps[i] / median) - 1 for i in gaps))
        raise refuse(
            f"missing slice(s): a gap of {steps[first]:.4g} mm after slice {first} of {len(ordered)} (sorted along "
            f"the normal) where the usual step is {median:.4g} mm; about {max(missing, 1)} slice(s) missing "
            f"in {gaps.size} gap(s)"
        )
    tolerance = max(STEP_ABSOLUTE_TOLERANCE_MM, STEP_RELATIVE_TOLERANCE * median)
    if np.abs(steps - median).max() > tolerance:
        raise refuse(
            f"varying slice spacing (steps from {steps.min():.4g} to {steps.max():.4g} mm, more than "
            f"{tolerance:.3g} mm apart from the median {median:.4g} mm)"
        )
    return float((along[-1] - along[0]) / (len(ordered) - 1))


def read_series(series: DicomSeries) -> DicomVolume:
    """Read the pixels of a checked series with SimpleITK's ``ImageSeriesReader`` and set the header geometry.

    The output pixel type is GDCM's choice for the stored values after rescaling (``int16``/``uint16`` for plain
    MR), or ``float32`` when slope or intercept differ between slices or are not integers.

    Raises:
        ValueError: for an inconsistent series (see :func:`series_geometry`) or pixels GDCM cannot decode; the
            message names the series.
    """
    geometry = series_geometry(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in geometry.files])
    slopes = {(header.rescale_slope, header.rescale_intercept) for header in series.slices}
    if len(slopes) > 1 or any(not float(s).is_integer() or not float(i).is_integer() for s, i in slopes):
        reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reader error"
        raise ValueError(f"{series.label}: pixel data could not be read ({reason})") from error
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{series.label}: colour images are not supported (expected one value per pixel)")
    if tuple(image.GetSize()) != geometry.grid.size_xyz:
        raise ValueError(
            f"{series.label}: the decoded pixels have size {image.GetSize()}, the headers describe "
            f"{geometry.grid.size_xyz}"
        )
    geometry.grid.apply_to(image)
    return DicomVolume(image=image, geometry=geometry)
