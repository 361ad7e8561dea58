"""Metrics on closed-form geometry, empty masks, anisotropic spacing and invariants."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from scipy.spatial.distance import cdist

from npcseg.evaluation import (
    aggregate,
    average_symmetric_surface_distance,
    compute_metrics,
    conformity_coefficient,
    dice,
    hausdorff_distance,
    hausdorff_distance_95,
    precision,
    sensitivity,
    slice_dice,
    surface_dice,
    surface_distances,
    volume_ml,
)


def _box(shape: tuple[int, ...], start: tuple[int, ...], size: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))] = True
    return mask


def _ball(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    squared = sum((grid - c) ** 2 for grid, c in zip(grids, centre, strict=True))
    return np.asarray(squared <= radius**2, dtype=bool)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (4.0, 0.93, 0.5)])
def test_two_shifted_cubes(spacing: tuple[float, float, float]) -> None:
    reference = _box((20, 24, 28), (5, 6, 7), (10, 10, 10))
    prediction = _box((20, 24, 28), (5, 6, 10), (10, 10, 10))  # shifted by 3 voxels along x
    metrics = compute_metrics(prediction, reference, spacing)
    assert metrics.dice == pytest.approx(0.7)  # overlap 7 of 10 columns
    assert metrics.sensitivity == pytest.approx(0.7)
    assert metrics.precision == pytest.approx(0.7)
    assert metrics.conformity == pytest.approx((3 * 0.7 - 2) / 0.7)
    assert metrics.hausdorff_mm == pytest.approx(3 * spacing[2])
    assert 0 < metrics.hd95_mm <= metrics.hausdorff_mm
    assert metrics.volume_reference_ml == pytest.approx(1000 * np.prod(spacing) / 1000)
    assert metrics.volume_prediction_ml == metrics.volume_reference_ml


def test_cube_inside_a_bigger_cube_with_anisotropic_spacing() -> None:
    spacing = (4.0, 0.9, 0.5)
    outer = _box((20, 30, 30), (2, 3, 4), (12, 20, 22))
    inner = _box((20, 30, 30), (4, 6, 9), (8, 14, 12))  # margins 2, 3, 5 before and after
    expected = math.sqrt((2 * 4.0) ** 2 + (3 * 0.9) ** 2 + (5 * 0.5) ** 2)  # corner to corner
    assert hausdorff_distance(inner, outer, spacing) == pytest.approx(expected)
    assert hausdorff_distance(outer, inner, spacing) == pytest.approx(expected)
    assert dice(inner, outer) == pytest.approx(2 * inner.sum() / (inner.sum() + outer.sum()))
    assert sensitivity(inner, outer) == pytest.approx(inner.sum() / outer.sum())
    assert precision(inner, outer) == 1.0


def test_concentric_discs_have_the_radius_difference_as_hausdorff_distance() -> None:
    small = _ball((61, 61), (30, 30), 10)
    large = _ball((61, 61), (30, 30), 18)
    distances = surface_distances(small, large, (0.5, 0.5))
    assert hausdorff_distance(small, large, (0.5, 0.5)) == pytest.approx(4.0, abs=0.5)
    assert np.all(np.abs(np.concatenate(distances) - 4.0) <= 0.5)
    assert surface_dice(small, large, (0.5, 0.5), tolerance_mm=3.0) == 0.0
    assert surface_dice(small, large, (0.5, 0.5), tolerance_mm=5.0) == 1.0


def test_line_against_a_point_pins_the_hd95_and_assd_conventions() -> None:
    reference = np.zeros((1, 1, 30), dtype=bool)
    reference[0, 0, 0] = True
    prediction = np.zeros((1, 1, 30), dtype=bool)
    prediction[0, 0, :21] = True
    spacing = (3.0, 2.0, 0.5)
    forward, backward = surface_distances(prediction, reference, spacing)
    np.testing.assert_allclose(np.sort(forward), 0.5 * np.arange(21))
    np.testing.assert_allclose(backward, [0.0])
    # max of the directed 95th percentiles = 0.95 * 20 voxels, not the union's 18.95 voxels
    assert hausdorff_distance_95(prediction, reference, spacing) == pytest.approx(0.5 * 19.0)
    assert hausdorff_distance(prediction, reference, spacing) == pytest.approx(0.5 * 20)
    assert average_symmetric_surface_distance(prediction, reference, spacing) == pytest.approx(0.5 * 210 / 22)
    assert surface_dice(prediction, reference, spacing, tolerance_mm=2.5) == pytest.approx((6 + 1) / 22)


def test_empty_masks() -> None:
    empty = np.zeros((4, 5, 6), dtype=np.uint8)
    full = empty.copy()
    full[1:3, 1:4, 2:5] = 1
    both = compute_metrics(empty, empty, (1.0, 1.0, 1.0))
    assert (both.dice, both.sensitivity, both.precision, both.surface_dice, both.conformity) == (1, 1, 1, 1, 1)
    assert math.isnan(both.hausdorff_mm) and math.isnan(both.hd95_mm) and math.isnan(both.assd_mm)
    assert compute_metrics(empty, empty, (1.0, 1.0, 1.0), empty_value=0.0).dice == 0.0
    for prediction, reference in [(full, empty), (empty, full)]:
        one = compute_metrics(prediction, reference, (1.0, 1.0, 1.0))
        assert (one.dice, one.sensitivity, one.precision, one.surface_dice) == (0, 0, 0, 0)
        assert one.conformity == -math.inf
        assert math.isnan(one.hausdorff_mm) and math.isnan(one.hd95_mm) and math.isnan(one.assd_mm)
        assert dice(prediction, reference) == sensitivity(prediction, reference) == 0.0
        assert math.isnan(hausdorff_distance(prediction, reference, (1.0, 1.0, 1.0)))


def test_compute_metrics_agrees_with_the_single_functions() -> None:
    rng = np.random.default_rng(3)
    reference = ndimage.gaussian_filter(rng.random((12, 40, 40)), 3) > 0.5
    prediction = ndimage.gaussian_filter(rng.random((12, 40, 40)), 3) > 0.5
    spacing = (4.0, 0.93, 0.93)
    metrics = compute_metrics(prediction, reference, spacing, tolerance_mm=1.5).to_dict()
    assert metrics["dice"] == pytest.approx(dice(prediction, reference))
    assert metrics["sensitivity"] == pytest.approx(sensitivity(prediction, reference))
    assert metrics["precision"] == pytest.approx(precision(prediction, reference))
    assert metrics["hausdorff_mm"] == pytest.approx(hausdorff_distance(prediction, reference, spacing))
    assert metrics["hd95_mm"] == pytest.approx(hausdorff_distance_95(prediction, reference, spacing))
    assert metrics["assd_mm"] == pytest.approx(average_symmetric_surface_distance(prediction, reference, spacing))
    assert metrics["surface_dice"] == pytest.approx(surface_dice(prediction, reference, spacing, tolerance_mm=1.5))
    assert metrics["volume_reference_ml"] == pytest.approx(volume_ml(reference, spacing))
    assert metrics["tolerance_mm"] == 1.5


def test_conformity_coefficient_matches_the_count_form() -> None:
    # CC = 1 - (FP + FN) / TP; TP = 6, FP = 2, FN = 1 -> DSC = 12 / 15
    assert conformity_coefficient(12 / 15) == pytest.approx(1 - 3 / 6)
    assert conformity_coefficient(1.0) == 1.0
    assert math.isnan(conformity_coefficient(math.nan))


def test_slice_dice() -> None:
    reference = np.zeros((3, 4, 4), dtype=bool)
    prediction = np.zeros((3, 4, 4), dtype=bool)
    reference[0, :2] = True
    prediction[0, :1] = True
    prediction[2, 0, 0] = True
    values = slice_dice(prediction, reference)
    assert values[0] == pytest.approx(2 * 4 / (4 + 8))
    assert math.isnan(values[1])
    assert values[2] == 0.0
    assert slice_dice(prediction, reference, empty_value=1.0)[1] == 1.0


def test_aggregate_excludes_and_counts_non_finite_values() -> None:
    summary = aggregate([0.5, 0.7, math.nan, 0.9, -math.inf])
    assert summary["mean"] == pytest.approx(0.7)
    assert summary["sd"] == pytest.approx(0.2)
    assert (summary["median"], summary["min"], summary["max"]) == (0.7, 0.5, 0.9)
    assert (summary["num_values"], summary["num_excluded"]) == (3, 2)
    assert math.isnan(aggregate([1.0])["sd"])
    assert math.isnan(aggregate([])["mean"])


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="spacing"):
        compute_metrics(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        hausdorff_distance(np.ones((2, 3)), np.ones((2, 3)), (1.0, 0.0))


def _brute_force_distances(
    prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Surface distances from all pairs over the whole (padded) volume, without the bounding-box shortcut."""

    def surface_points(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        structure = ndimage.generate_binary_structure(mask.ndim, 1)
        surface = padded & ~ndimage.binary_erosion(padded, structure=structure)
        return np.argwhere(surface) * np.asarray(spacing)

    pairs = cdist(surface_points(prediction), surface_points(reference))
    return pairs.min(axis=1), pairs.min(axis=0)


masks = arrays(np.bool_, (5, 6, 7), elements=st.booleans())
spacings = st.tuples(*(st.floats(0.3, 5.0) for _ in range(3)))


@settings(max_examples=40, deadline=None)
@given(prediction=masks, reference=masks, spacing=spacings)
def test_symmetry_bounds_and_brute_force_agreement(
    prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, float, float]
) -> None:
    forward = compute_metrics(prediction, reference, spacing)
    backward = compute_metrics(reference, prediction, spacing)
    for name in ["dice", "hausdorff_mm", "hd95_mm", "assd_mm", "surface_dice", "conformity"]:
        np.testing.assert_allclose(getattr(forward, name), getattr(backward, name), rtol=1e-12)
    assert forward.sensitivity == backward.precision
    assert 0.0 <= forward.dice <= 1.0 and 0.0 <= forward.surface_dice <= 1.0
    if prediction.any() and reference.any():
        assert 0.0 <= forward.assd_mm <= forward.hausdorff_mm
        assert forward.hd95_mm <= forward.hausdorff_mm
        expected = _brute_force_distances(prediction, reference, spacing)
        actual = surface_distances(prediction, reference, spacing)
        for got, want in zip(actual, expected, strict=True):
            np.testing.assert_allclose(np.sort(got), np.sort(want), atol=1e-9)
    identical = compute_metrics(reference, reference, spacing)
    assert identical.dice == 1.0
    assert identical.hausdorff_mm == 0.0 or not reference.any()


@settings(max_examples=25, deadline=None)
@given(prediction=masks, reference=masks, spacing=spacings, factor=st.floats(0.1, 10.0))
def test_distances_scale_with_spacing(
    prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, float, float], factor: float
) -> None:
    base = compute_metrics(prediction, reference, spacing)
    scaled = compute_metrics(prediction, reference, tuple(factor * value for value in spacing))
    for name in ["hausdorff_mm", "hd95_mm", "assd_mm"]:
        np.testing.assert_allclose(getattr(scaled, name), factor * getattr(base, name), rtol=1e-9)
    assert scaled.dice == base.dice
    assert scaled.volume_reference_ml == pytest.approx(factor**3 * base.volume_reference_ml)


def test_hd95_on_a_clinical_sized_volume_is_fast() -> None:
    reference = np.zeros((45, 512, 512), dtype=bool)
    reference[15:30] = _ball((15, 512, 512), (7, 250, 260), 40)[:, :, :]
    prediction = np.roll(reference, (1, 4, -3), axis=(0, 1, 2))
    start = time.perf_counter()
    metrics = compute_metrics(prediction, reference, (4.0, 0.48, 0.48))
    elapsed = time.perf_counter() - start
    assert 0.5 < metrics.dice < 1.0 and metrics.hd95_mm > 0
    assert elapsed < 5.0  # loose; benchmarks/metrics_speed.py holds the strict < 1 s check
