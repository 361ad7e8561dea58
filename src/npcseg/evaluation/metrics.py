"""Per-patient segmentation metrics in 3D (or 2D) with physical spacing.

Conventions (the style guide's written contract):

* Masks are arrays of the same shape in array order ``(z, y, x)``; any non-zero value is foreground.
  ``spacing_mm`` is in the same order as the array axes.
* **Overlap metrics** (Dice, sensitivity, precision, surface Dice): when *both* masks are empty the result is
  ``empty_value`` (default 1.0: nothing to find, nothing found). When exactly one mask is empty the result is 0.0,
  even where the formula is 0/0 (sensitivity with an empty reference, precision with an empty prediction): such a
  case is scored as a failure, not left undefined.
* **Distance metrics** (Hausdorff distance, HD95, ASSD) are ``nan`` when either mask is empty.
* Conformity coefficient ``CC = (3 DSC - 2) / DSC = 1 - (FP + FN) / TP`` in (-inf, 1]; ``-inf`` when DSC is 0.
  :func:`aggregate` excludes non-finite values and counts them.

Surfaces and distances. The surface of a mask is the mask XOR its binary erosion with the face-connected
structuring element (6-connectivity in 3D, 4 in 2D), so a surface voxel is a foreground voxel with at least one
face neighbour in the background; space outside the array counts as background. Distances are Euclidean between
voxel centres in mm, from ``scipy.ndimage.distance_transform_edt(..., sampling=spacing_mm)`` computed on the
bounding box of both masks padded by one voxel (every surface voxel lies inside it, so the result equals the
whole-volume computation; a 512 x 512 x 45 volume with a tumour-sized blob takes tens of milliseconds).

* Hausdorff distance: maximum over both directed surface-distance sets. This equals the Hausdorff distance between
  the full voxel sets (what SimpleITK's ``HausdorffDistanceImageFilter`` computes; the tests check agreement)
  except in unusual shapes, e.g. a part of one mask lying in a cavity enclosed by the other mask.
* HD95: the **maximum of the two directed 95th percentiles** (the MONAI ``compute_hausdorff_distance``
  convention; medpy's ``hd95`` instead takes the 95th percentile of the union of both sets, which is never larger).
  Percentiles use numpy's default linear interpolation.
* ASSD: the mean of the union of both directed sets, i.e. ``(sum d(P->R) + sum d(R->P)) / (|S_P| + |S_R|)``.
* Surface Dice at tolerance tau (Nikolov et al., 2021), counted over surface voxels (not surface area):
  ``(#{p in S_P: d(p, S_R) <= tau} + #{r in S_R: d(r, S_P) <= tau}) / (|S_P| + |S_R|)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def _as_masks(
    prediction: np.ndarray, reference: np.ndarray, spacing_mm: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    prediction = np.asarray(prediction) != 0
    reference = np.asarray(reference) != 0
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from reference shape {reference.shape}")
    if spacing_mm is not None:
        if len(spacing_mm) != prediction.ndim:
            raise ValueError(f"spacing_mm {tuple(spacing_mm)} needs one value per array axis ({prediction.ndim})")
        if not all(math.isfinite(value) and value > 0 for value in spacing_mm):
            raise ValueError(f"spacing_mm values must be positive and finite, got {tuple(spacing_mm)}")
    return prediction, reference


def _counts(prediction: np.ndarray, reference: np.ndarray) -> tuple[int, int, int]:
    """True positives, false positives, false negatives (voxel counts)."""
    true_positive = int(np.count_nonzero(prediction & reference))
    return (
        true_positive,
        int(np.count_nonzero(prediction)) - true_positive,
        int(np.count_nonzero(reference)) - true_positive,
    )


def _ratio(numerator: int, denominator: int, both_empty: bool, empty_value: float) -> float:
    if both_empty:
        return empty_value
    return numerator / denominator if denominator else 0.0


def dice(prediction: np.ndarray, reference: np.ndarray, *, empty_value: float = 1.0) -> float:
    """Dice similarity coefficient ``2 TP / (2 TP + FP + FN)`` (paper eq. 2); ``empty_value`` if both empty."""
    prediction, reference = _as_masks(prediction, reference)
    true_positive, false_positive, false_negative = _counts(prediction, reference)
    both_empty = true_positive + false_positive + false_negative == 0
    return _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative, both_empty, empty_value)


def sensitivity(prediction: np.ndarray, reference: np.ndarray, *, empty_value: float = 1.0) -> float:
    """Sensitivity (recall) ``TP / (TP + FN)``; ``empty_value`` if both empty, 0.0 if only one is."""
    prediction, reference = _as_masks(prediction, reference)
    true_positive, false_positive, false_negative = _counts(prediction, reference)
    both_empty = true_positive + false_positive + false_negative == 0
    return _ratio(true_positive, true_positive + false_negative, both_empty, empty_value)


def precision(prediction: np.ndarray, reference: np.ndarray, *, empty_value: float = 1.0) -> float:
    """Precision ``TP / (TP + FP)``; ``empty_value`` if both empty, 0.0 if only one is."""
    prediction, reference = _as_masks(prediction, reference)
    true_positive, false_positive, false_negative = _counts(prediction, reference)
    both_empty = true_positive + false_positive + false_negative == 0
    return _ratio(true_positive, true_positive + false_positive, both_empty, empty_value)


def conformity_coefficient(dice_value: float) -> float:
    """Conformity coefficient ``(3 DSC - 2) / DSC`` from a Dice value; ``-inf`` for DSC 0, nan for nan."""
    if math.isnan(dice_value):
        return math.nan
    if dice_value == 0:
        return -math.inf
    return (3.0 * dice_value - 2.0) / dice_value


def volume_ml(mask: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Foreground volume in millilitres (voxel count x voxel volume in mm^3 / 1000)."""
    mask = np.asarray(mask) != 0
    _as_masks(mask, mask, spacing_mm)
    return int(np.count_nonzero(mask)) * float(np.prod(spacing_mm)) / 1000.0


def slice_dice(prediction: np.ndarray, reference: np.ndarray, *, empty_value: float = math.nan) -> np.ndarray:
    """Dice of every 2D slice along axis 0 (``(z, y, x)`` -> ``(z,)``).

    Slices where both masks are empty get ``empty_value``, by default nan (most slices hold no tumour, and 1.0
    for each would swamp the mean; :func:`aggregate` drops and counts the nans).
    """
    prediction, reference = _as_masks(prediction, reference)
    if prediction.ndim < 2:
        raise ValueError(f"slice_dice needs at least 2D masks, got shape {prediction.shape}")
    axes = tuple(range(1, prediction.ndim))
    true_positive = np.count_nonzero(prediction & reference, axis=axes)
    denominator = np.count_nonzero(prediction, axis=axes) + np.count_nonzero(reference, axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = 2.0 * true_positive / denominator
    return np.where(denominator == 0, empty_value, values)


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every True voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(other for other in range(mask.ndim) if other != axis)
        indices = np.flatnonzero(np.any(mask, axis=others))
        box.append(slice(int(indices[0]), int(indices[-1]) + 1))
    return tuple(box)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: the mask XOR its erosion with the face-connected structuring element."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(
    prediction: np.ndarray, reference: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (prediction surface -> reference surface, reference -> prediction).

    Returns two 1D float arrays, one value per surface voxel; both empty if either mask is empty.
    """
    prediction, reference = _as_masks(prediction, reference, spacing_mm)
    if not prediction.any() or not reference.any():
        return np.zeros(0), np.zeros(0)
    box = _bounding_box(prediction | reference)
    surface_prediction = _surface(np.pad(prediction[box], 1))
    surface_reference = _surface(np.pad(reference[box], 1))
    sampling = tuple(float(value) for value in spacing_mm)
    to_reference = ndimage.distance_transform_edt(~surface_reference, sampling=sampling)
    to_prediction = ndimage.distance_transform_edt(~surface_prediction, sampling=sampling)
    return to_reference[surface_prediction], to_prediction[surface_reference]


def _hausdorff(distances: tuple[np.ndarray, np.ndarray], percentile: float) -> float:
    forward, backward = distances
    if forward.size == 0 or backward.size == 0:
        return math.nan
    return float(max(np.percentile(forward, percentile), np.percentile(backward, percentile)))


def hausdorff_distance(prediction: np.ndarray, reference: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Symmetric Hausdorff distance between the surfaces in mm; nan if either mask is empty."""
    return _hausdorff(surface_distances(prediction, reference, spacing_mm), 100.0)


def hausdorff_distance_95(
    prediction: np.ndarray, reference: np.ndarray, spacing_mm: Sequence[float], *, percentile: float = 95.0
) -> float:
    """HD95 in mm: max of the two directed ``percentile``-th percentiles; nan if either mask is empty."""
    return _hausdorff(surface_distances(prediction, reference, spacing_mm), percentile)


def _assd(distances: tuple[np.ndarray, np.ndarray]) -> float:
    forward, backward = distances
    if forward.size == 0 or backward.size == 0:
        return math.nan
    return float((forward.sum() + backward.sum()) / (forward.size + backward.size))


def average_symmetric_surface_distance(
    prediction: np.ndarray, reference: np.ndarray, spacing_mm: Sequence[float]
) -> float:
    """ASSD in mm: mean of all surface distances in both directions; nan if either mask is empty."""
    return _assd(surface_distances(prediction, reference, spacing_mm))


def _surface_dice(distances: tuple[np.ndarray, np.ndarray], tolerance_mm: float) -> float:
    forward, backward = distances
    close = np.count_nonzero(forward <= tolerance_mm) + np.count_nonzero(backward <= tolerance_mm)
    return float(close / (forward.size + backward.size))


def surface_dice(
    prediction: np.ndarray,
    reference: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    tolerance_mm: float = 2.0,
    empty_value: float = 1.0,
) -> float:
    """Surface Dice: share of surface voxels of both masks within ``tolerance_mm`` of the other surface."""
    prediction, reference = _as_masks(prediction, reference, spacing_mm)
    has_prediction, has_reference = bool(prediction.any()), bool(reference.any())
    if not has_prediction and not has_reference:
        return empty_value
    if not has_prediction or not has_reference:
        return 0.0
    return _surface_dice(surface_distances(prediction, reference, spacing_mm), tolerance_mm)


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one patient (see the module docstring for definitions and empty-mask values).

    Attributes:
        dice: Dice similarity coefficient, 2 TP / (2 TP + FP + FN).
        sensitivity: TP / (TP + FN).
        precision: TP / (TP + FP).
        conformity: conformity coefficient (3 DSC - 2) / DSC.
        hausdorff_mm: symmetric surface Hausdorff distance in mm.
        hd95_mm: max of the two directed 95th-percentile surface distances in mm.
        assd_mm: average symmetric surface distance in mm.
        surface_dice: surface Dice at ``tolerance_mm``.
        tolerance_mm: the surface-Dice tolerance in mm.
        volume_prediction_ml: predicted volume in ml.
        volume_reference_ml: reference volume in ml.
    """

    dice: float
    sensitivity: float
    precision: float
    conformity: float
    hausdorff_mm: float
    hd95_mm: float
    assd_mm: float
    surface_dice: float
    tolerance_mm: float
    volume_prediction_ml: float
    volume_reference_ml: float

    def to_dict(self) -> dict[str, float]:
        """Field name -> value (plain floats, for CSV / JSON)."""
        return {item.name: float(getattr(self, item.name)) for item in dataclasses.fields(self)}


def compute_metrics(
    prediction: np.ndarray,
    reference: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    tolerance_mm: float = 2.0,
    empty_value: float = 1.0,
) -> SegmentationMetrics:
    """All metrics of one patient, computing the surface distances once and on the masks' bounding box.

    Args:
        prediction: binary (non-zero = foreground) mask, ``(z, y, x)``.
        reference: gold-standard mask of the same shape.
        spacing_mm: voxel size in mm in array order ``(z, y, x)``.
        tolerance_mm: surface-Dice tolerance in mm.
        empty_value: overlap metrics' value when both masks are empty.

    Raises:
        ValueError: on shapes that differ, or a spacing of the wrong length or not positive.
    """
    prediction, reference = _as_masks(prediction, reference, spacing_mm)
    if tolerance_mm < 0:
        raise ValueError(f"tolerance_mm must be >= 0, got {tolerance_mm}")
    union = prediction | reference
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    if union.any():
        box = _bounding_box(union)
        prediction, reference = prediction[box], reference[box]
    true_positive, false_positive, false_negative = _counts(prediction, reference)
    both_empty = true_positive + false_positive + false_negative == 0
    dice_value = _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative, both_empty, empty_value)
    distances = surface_distances(prediction, reference, spacing_mm)
    if both_empty:
        surface_dice_value = empty_value
    elif distances[0].size == 0:
        surface_dice_value = 0.0
    else:
        surface_dice_value = _surface_dice(distances, tolerance_mm)
    return SegmentationMetrics(
        dice=dice_value,
        sensitivity=_ratio(true_positive, true_positive + false_negative, both_empty, empty_value),
        precision=_ratio(true_positive, true_positive + false_positive, both_empty, empty_value),
        conformity=conformity_coefficient(dice_value),
        hausdorff_mm=_hausdorff(distances, 100.0),
        hd95_mm=_hausdorff(distances, 95.0),
        assd_mm=_assd(distances),
        surface_dice=surface_dice_value,
        tolerance_mm=float(tolerance_mm),
        volume_prediction_ml=(true_positive + false_positive) * voxel_ml,
        volume_reference_ml=(true_positive + false_negative) * voxel_ml,
    )


def aggregate(values: Iterable[float]) -> dict[str, float]:
    """Summary over patients: mean, sd (sample, ddof = 1), median, min, max of the finite values.

    Non-finite values (nan from empty masks, -inf conformity) are excluded and counted in ``num_excluded``;
    ``num_values`` counts the values used. With no finite value every statistic is nan; with one, sd is nan.
    """
    array = np.asarray(list(values), dtype=float).ravel()
    finite = array[np.isfinite(array)]
    summary = {"mean": math.nan, "sd": math.nan, "median": math.nan, "min": math.nan, "max": math.nan}
    if finite.size:
        summary.update(
            mean=float(finite.mean()),
            median=float(np.median(finite)),
            min=float(finite.min()),
            max=float(finite.max()),
        )
    if finite.size > 1:
        summary["sd"] = float(finite.std(ddof=1))
    summary["num_values"] = int(finite.size)
    summary["num_excluded"] = int(array.size - finite.size)
    return summary
