"""Axial overlays of a prediction and its reference on T2 and T1, coloured like the papers' figures.

On each displayed pixel the colour says who drew it: the reference in red, the prediction in green, both in
yellow (red + green). By default the masks are drawn as contours (the pixels of each mask that touch a pixel
outside it, 4-connected within the slice), so the anatomy under them stays visible.

The images are shown on the case's original T2 grid (the label's grid, on which the prediction lies). T1 has its
own grid; it is resampled onto the T2 slice (linear) through the saved registration of T1 onto T2 when the
preprocessed cache recorded one, else with the identity transform (the scanner's physical coordinates), and the
figure says which. Slices are shown in array order (rows: y, columns: x); for the usual LPS-aligned axial scans
that is the radiological view (the patient's right on the left, anterior at the top).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from npcseg.io.images import read_image
from npcseg.io.volume import Grid
from npcseg.registration.resample import resample_onto

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from npcseg.report.model import CaseResult

REFERENCE_COLOUR = (1.0, 0.0, 0.0)
"""Red: reference only."""
PREDICTION_COLOUR = (0.0, 1.0, 0.0)
"""Green: prediction only."""
OVERLAP_COLOUR = (1.0, 1.0, 0.0)
"""Yellow: reference and prediction."""
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def window(image: np.ndarray, low_percentile: float = 1.0, high_percentile: float = 99.0) -> np.ndarray:
    """Intensities mapped linearly to [0, 1] between two percentiles of the image (clipped); float64.

    A constant image maps to 0.
    """
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    low, high = np.percentile(finite, [low_percentile, high_percentile])
    if high <= low:
        return np.zeros_like(values)
    return np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)


def boundary(mask: np.ndarray) -> np.ndarray:
    """The pixels of a 2D mask with a 4-connected neighbour outside it (image borders count as outside)."""
    mask = np.asarray(mask, dtype=bool)
    interior = ndimage.binary_erosion(mask, structure=_FOUR_CONNECTED, border_value=0)
    return mask & ~interior


def overlay_rgb(
    image: np.ndarray, reference: np.ndarray, prediction: np.ndarray, *, contour: bool = True
) -> np.ndarray:
    """An RGB picture of a slice with the reference and the prediction drawn over it.

    Args:
        image: (Y, X) intensities (any range; windowed with :func:`window`).
        reference: (Y, X) reference mask (nonzero = tumour).
        prediction: (Y, X) predicted mask (nonzero = tumour).
        contour: draw each mask's boundary (:func:`boundary`) rather than the whole mask.

    Returns:
        (Y, X, 3) float64 in [0, 1]: grey image; :data:`REFERENCE_COLOUR` where only the reference is drawn,
        :data:`PREDICTION_COLOUR` where only the prediction is, :data:`OVERLAP_COLOUR` where both are.
    """
    grey = window(image)
    if grey.shape != np.shape(reference) or grey.shape != np.shape(prediction):
        raise ValueError(
            f"shapes differ: image {grey.shape}, reference {np.shape(reference)}, prediction {np.shape(prediction)}"
        )
    reference_drawn = np.asarray(reference, dtype=bool)
    prediction_drawn = np.asarray(prediction, dtype=bool)
    if contour:
        reference_drawn, prediction_drawn = boundary(reference_drawn), boundary(prediction_drawn)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[reference_drawn & ~prediction_drawn] = REFERENCE_COLOUR
    rgb[prediction_drawn & ~reference_drawn] = PREDICTION_COLOUR
    rgb[reference_drawn & prediction_drawn] = OVERLAP_COLOUR
    return rgb


@dataclass(frozen=True)
class SliceChoice:
    """An axial slice to show.

    Attributes:
        index: the slice (z) index.
        reason: why it was chosen (``largest reference area``, ``largest error``, or both).
        reference_area: reference pixels on it.
        error_area: pixels where prediction and reference disagree.
    """

    index: int
    reason: str
    reference_area: int
    error_area: int


def select_slices(reference: np.ndarray, prediction: np.ndarray) -> list[SliceChoice]:
    """The slice with the largest reference area and the slice with the largest error (reference XOR
    prediction); one slice when they coincide. Ties go to the lowest index.

    Args:
        reference: (Z, Y, X) mask.
        prediction: (Z, Y, X) mask.

    An empty reference falls back to the largest predicted area.
    """
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    reference_area = reference.sum(axis=(1, 2))
    error_area = (reference ^ prediction).sum(axis=(1, 2))
    if reference_area.max(initial=0) > 0:
        largest, largest_reason = int(np.argmax(reference_area)), "largest reference area"
    else:
        largest, largest_reason = int(np.argmax(prediction.sum(axis=(1, 2)))), "largest predicted area"
    worst = int(np.argmax(error_area))

    def choice(index: int, reason: str) -> SliceChoice:
        return SliceChoice(index, reason, int(reference_area[index]), int(error_area[index]))

    if worst == largest or error_area[worst] == 0:
        return [choice(largest, f"{largest_reason} and largest error")]
    return [choice(largest, largest_reason), choice(worst, "largest error")]


def crop_window(
    masks: np.ndarray, spacing_yx_mm: tuple[float, float], *, margin_mm: float = 20.0, min_size_mm: float = 70.0
) -> tuple[slice, slice]:
    """A square in-plane window (in mm) around every slice's masks: centred on the bounding box of ``masks``
    (Z, Y, X), its side the box's longer side plus ``margin_mm`` on each end, at least ``min_size_mm``, clipped
    to the image. The whole slice when ``masks`` is empty."""
    masks = np.asarray(masks, dtype=bool)
    height, width = masks.shape[-2:]
    projection = masks.reshape(-1, height, width).any(axis=0)
    if not projection.any():
        return slice(0, height), slice(0, width)
    rows, columns = np.nonzero(projection)
    extent_mm = max(
        (rows.max() - rows.min() + 1) * spacing_yx_mm[0], (columns.max() - columns.min() + 1) * spacing_yx_mm[1]
    )
    half_mm = max(extent_mm / 2 + margin_mm, min_size_mm / 2)
    bounds = []
    for low, high, spacing, size in (
        (rows.min(), rows.max(), spacing_yx_mm[0], height),
        (columns.min(), columns.max(), spacing_yx_mm[1], width),
    ):
        half = half_mm / spacing
        centre = (low + high + 1) / 2
        start = max(0, math.floor(centre - half))
        stop = min(size, math.ceil(centre + half))
        bounds.append(slice(start, stop))
    return bounds[0], bounds[1]


def transform_from_description(description: dict[str, Any] | None) -> sitk.Transform | None:
    """Rebuild a saved rigid transform (``describe_transform`` form: ``class``, ``parameters``, ``center_mm``);
    ``None`` for no description or a class other than ``Euler3DTransform`` / ``VersorRigid3DTransform``."""
    if not description:
        return None
    name = str(description.get("class"))
    if name not in ("Euler3DTransform", "VersorRigid3DTransform") or "parameters" not in description:
        return None
    transform = sitk.Euler3DTransform() if name == "Euler3DTransform" else sitk.VersorRigid3DTransform()
    if "center_mm" in description:
        transform.SetCenter([float(value) for value in description["center_mm"]])
    transform.SetParameters([float(value) for value in description["parameters"]])
    return transform


@dataclass(frozen=True)
class CaseVolumes:
    """A case's arrays on its T2 (label) grid.

    Attributes:
        t2: (Z, Y, X) T2 intensities.
        reference: (Z, Y, X) bool reference mask.
        prediction: (Z, Y, X) bool predicted mask.
        grid: the label's grid.
        t1_image: the T1 image on its own grid (resampled per shown slice), or ``None``.
        t1_transform: T2 physical -> T1 physical, or ``None`` (identity).
        t1_note: how T1 is shown (registration used, identity, or absent).
    """

    t2: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray
    grid: Grid
    t1_image: sitk.Image | None
    t1_transform: sitk.Transform | None
    t1_note: str

    def t1_slice(self, index: int) -> np.ndarray | None:
        """T1 resampled onto T2 slice ``index`` (Y, X), or ``None`` without T1."""
        if self.t1_image is None:
            return None
        origin = self.grid.index_to_physical(np.array([0.0, 0.0, float(index)]))[0]
        size = (self.grid.size_xyz[0], self.grid.size_xyz[1], 1)
        plane = Grid(size, self.grid.spacing_xyz, tuple(float(v) for v in origin), self.grid.direction)  # type: ignore[arg-type]
        resampled = resample_onto(self.t1_image, plane, self.t1_transform, pixel_id=sitk.sitkFloat32)
        return sitk.GetArrayFromImage(resampled)[0]


def load_case_volumes(case: CaseResult) -> CaseVolumes:
    """Read a case's T2, T1, reference and prediction (see :class:`CaseVolumes`).

    Raises:
        ValueError: the case lacks a file (``case.can_overlay`` is false), or the prediction does not lie on
            the label's grid.
    """
    if not case.can_overlay:
        raise ValueError(f"case {case.case_id}: prediction, label or T2 image not found; no overlay")
    assert case.label is not None and case.prediction is not None
    label = read_image(case.label)
    prediction = read_image(case.prediction)
    grid = Grid.from_image(label)
    mismatch = Grid.from_image(prediction).mismatch(grid)
    if mismatch is not None:
        raise ValueError(f"{case.prediction}: does not lie on the grid of {case.label} ({mismatch})")
    t2 = read_image(case.images["t2"])
    if Grid.from_image(t2).mismatch(grid) is not None:
        t2 = resample_onto(t2, grid, pixel_id=sitk.sitkFloat32)
    t1_image, transform, note = None, None, "T1 not available: T2 only"
    if "t1" in case.images:
        t1_image = read_image(case.images["t1"])
        transform = transform_from_description(case.t1_registration)
        note = (
            "T1 resampled onto the T2 grid with its saved registration"
            if transform is not None
            else "T1 resampled onto the T2 grid with the identity transform (no registration known)"
        )
    return CaseVolumes(
        t2=sitk.GetArrayFromImage(t2).astype(np.float32),
        reference=sitk.GetArrayViewFromImage(label) > 0,
        prediction=sitk.GetArrayViewFromImage(prediction) > 0,
        grid=grid,
        t1_image=t1_image,
        t1_transform=transform,
        t1_note=note,
    )


def case_overlay_figure(case: CaseResult, volumes: CaseVolumes, heading: str) -> Figure:
    """One figure per case: a row per chosen slice (:func:`select_slices`), a column per sequence (T2, T1),
    cropped around the masks (:func:`crop_window`), titled with ``heading`` and the case's metrics."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    choices = select_slices(volumes.reference, volumes.prediction)
    rows, columns = crop_window(
        volumes.reference | volumes.prediction, (volumes.grid.spacing_zyx[1], volumes.grid.spacing_zyx[2])
    )
    t1_slices = [volumes.t1_slice(choice.index) for choice in choices]
    has_t1 = all(t1 is not None and np.ptp(t1) > 0 for t1 in t1_slices)
    num_columns = 2 if has_t1 else 1
    aspect = (
        (rows.stop - rows.start)
        * volumes.grid.spacing_zyx[1]
        / ((columns.stop - columns.start) * volumes.grid.spacing_zyx[2])
    )
    panel_height = 3.3 * min(max(aspect, 0.4), 2.5) + 0.45  # room for the two-line panel title
    figure = Figure(figsize=(3.3 * num_columns, panel_height * len(choices) + 0.9), dpi=100, layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(choices), num_columns, squeeze=False))
    for row_index, choice in enumerate(choices):
        reference = volumes.reference[choice.index][rows, columns]
        prediction = volumes.prediction[choice.index][rows, columns]
        panels = [("T2", volumes.t2[choice.index][rows, columns])]
        t1 = t1_slices[row_index]
        if has_t1 and t1 is not None:
            panels.append(("T1", t1[rows, columns]))
        for column_index, (sequence, image) in enumerate(panels):
            axis = axes[row_index, column_index]
            axis.imshow(overlay_rgb(image, reference, prediction), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(
                f"{sequence}, slice {choice.index}: {choice.reason}\n"
                f"reference {choice.reference_area} px, error {choice.error_area} px",
                fontsize=8,
            )

    def shown(name: str, digits: int) -> str:
        value = case.metrics.get(name, math.nan)
        return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"

    figure.suptitle(
        f"{heading}: {case.case_id} ({case.group})  Dice {shown('dice', 3)}  sensitivity "
        f"{shown('sensitivity', 3)}  precision {shown('precision', 3)}  HD95 {shown('hd95_mm', 1)} mm",
        fontsize=9,
    )
    legend = [
        Patch(color=REFERENCE_COLOUR, label="reference"),
        Patch(color=PREDICTION_COLOUR, label="prediction"),
        Patch(color=OVERLAP_COLOUR, label="overlap"),
    ]
    note = volumes.t1_note if has_t1 or "t1" not in case.images else "T1 does not cover this slice: T2 only"
    figure.legend(handles=legend, loc="outside lower center", ncols=3, fontsize=8, title=note, title_fontsize=7)
    return figure
