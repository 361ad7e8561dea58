"""Overlay colours, slice choice, cropping and T1 onto the T2 grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from npcseg.io.volume import Grid
from npcseg.registration.rigid import describe_transform
from npcseg.report.overlays import (
    OVERLAP_COLOUR,
    PREDICTION_COLOUR,
    REFERENCE_COLOUR,
    CaseVolumes,
    boundary,
    crop_window,
    overlay_rgb,
    select_slices,
    transform_from_description,
    window,
)


def _two_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 7 x 7 ramp image, a 3 x 3 reference at rows 1-3 / columns 1-3, the prediction one column right."""
    image = np.arange(49, dtype=float).reshape(7, 7)
    reference = np.zeros((7, 7), bool)
    reference[1:4, 1:4] = True
    prediction = np.zeros((7, 7), bool)
    prediction[1:4, 2:5] = True
    return image, reference, prediction


def test_filled_overlay_is_red_for_reference_only_green_for_prediction_only_yellow_for_both() -> None:
    image, reference, prediction = _two_boxes()
    rgb = overlay_rgb(image, reference, prediction, contour=False)
    assert rgb.shape == (7, 7, 3)
    assert tuple(rgb[2, 1]) == REFERENCE_COLOUR == (1.0, 0.0, 0.0)
    assert tuple(rgb[2, 4]) == PREDICTION_COLOUR == (0.0, 1.0, 0.0)
    assert tuple(rgb[2, 2]) == tuple(rgb[2, 3]) == OVERLAP_COLOUR == (1.0, 1.0, 0.0)
    grey = window(image)
    outside = ~(reference | prediction)
    for channel in range(3):  # untouched pixels show the windowed image, equal in R, G and B
        np.testing.assert_array_equal(rgb[..., channel][outside], grey[outside])


def test_contour_overlay_colours_each_mask_boundary() -> None:
    image, reference, prediction = _two_boxes()
    rgb = overlay_rgb(image, reference, prediction, contour=True)
    assert tuple(rgb[2, 1]) == REFERENCE_COLOUR  # left edge of the reference only
    assert tuple(rgb[2, 4]) == PREDICTION_COLOUR  # right edge of the prediction only
    assert tuple(rgb[1, 2]) == OVERLAP_COLOUR  # top edge of both
    assert tuple(rgb[2, 2]) == PREDICTION_COLOUR  # prediction's left edge inside the reference
    assert tuple(rgb[2, 3]) == REFERENCE_COLOUR  # reference's right edge inside the prediction
    assert rgb[0, 0, 0] == rgb[0, 0, 1] == rgb[0, 0, 2] == 0.0  # darkest pixel, not drawn


def test_boundary_of_a_square_is_its_ring_and_a_single_pixel_is_its_own_boundary() -> None:
    square = np.zeros((5, 5), bool)
    square[1:4, 1:4] = True
    ring = square.copy()
    ring[2, 2] = False
    np.testing.assert_array_equal(boundary(square), ring)
    dot = np.zeros((3, 3), bool)
    dot[1, 1] = True
    np.testing.assert_array_equal(boundary(dot), dot)
    full = np.ones((3, 3), bool)
    assert boundary(full).sum() == 8  # the image border counts as outside


def test_window_maps_percentiles_to_unit_interval_and_constant_to_zero() -> None:
    values = np.linspace(0, 100, 101)
    windowed = window(values, 10, 90)
    assert windowed[10] == pytest.approx(0.0) and windowed[90] == pytest.approx(1.0)
    assert windowed[50] == pytest.approx(0.5)
    assert windowed.min() == 0.0 and windowed.max() == 1.0
    np.testing.assert_array_equal(window(np.full((3, 3), 7.0)), np.zeros((3, 3)))


def test_select_slices_picks_largest_reference_area_and_largest_error() -> None:
    reference = np.zeros((5, 8, 8), bool)
    reference[1, :2, :2] = True  # area 4
    reference[2, :4, :4] = True  # area 16: largest
    prediction = reference.copy()
    prediction[4, :3, :3] = True  # 9 false-positive pixels: largest error
    prediction[2, 0, 0] = False  # 1 error on the largest slice
    choices = select_slices(reference, prediction)
    assert [(choice.index, choice.reason) for choice in choices] == [
        (2, "largest reference area"),
        (4, "largest error"),
    ]
    assert (choices[0].reference_area, choices[0].error_area) == (16, 1)
    assert (choices[1].reference_area, choices[1].error_area) == (0, 9)
    same = select_slices(reference, reference)
    assert len(same) == 1 and same[0].index == 2 and same[0].error_area == 0


def test_crop_window_is_a_square_in_mm_around_the_masks_clipped_to_the_image() -> None:
    masks = np.zeros((2, 200, 100), bool)
    masks[1, 100:110, 40:44] = True
    rows, columns = crop_window(masks, (0.5, 1.0), margin_mm=5.0, min_size_mm=10.0)
    # extent: 10 rows x 0.5 mm = 5 mm, 4 columns x 1 mm = 4 mm -> half side 2.5 + 5 = 7.5 mm
    assert (rows.start, rows.stop) == (105 - 15, 105 + 15)
    assert (columns.start, columns.stop) == (42 - 8, 42 + 8)  # 7.5 mm / 1 mm, rounded outwards
    edge = np.zeros((1, 20, 20), bool)
    edge[0, 0, 0] = True
    rows, columns = crop_window(edge, (1.0, 1.0), margin_mm=3.0, min_size_mm=0.0)
    assert rows.start == 0 and columns.start == 0 and rows.stop == 4
    assert crop_window(np.zeros((1, 6, 9), bool), (1.0, 1.0)) == (slice(0, 6), slice(0, 9))


def test_transform_from_description_rebuilds_a_saved_rigid_transform() -> None:
    transform = sitk.Euler3DTransform()
    transform.SetCenter((1.0, -2.0, 3.0))
    transform.SetRotation(0.05, -0.02, 0.1)
    transform.SetTranslation((2.0, -1.0, 0.5))
    rebuilt = transform_from_description(describe_transform(transform))
    assert rebuilt is not None
    for point in [(0.0, 0.0, 0.0), (30.0, -20.0, 10.0)]:
        np.testing.assert_allclose(rebuilt.TransformPoint(point), transform.TransformPoint(point), atol=1e-9)
    assert transform_from_description(None) is None
    assert transform_from_description({"class": "BSplineTransform", "parameters": [0.0]}) is None


def _t1_volumes(t1: sitk.Image, transform: sitk.Transform | None) -> CaseVolumes:
    grid = Grid((20, 20, 3), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    empty = np.zeros(grid.shape_zyx, bool)
    return CaseVolumes(np.zeros(grid.shape_zyx, np.float32), empty, empty, grid, t1, transform, "")


def test_t1_is_resampled_onto_the_t2_slice_through_the_registration(tmp_path: Path) -> None:
    # T1 at 0.5 mm whose bright block sits 4 mm further along x than the same anatomy in T2 space (x 5..9 mm)
    array = np.zeros((6, 40, 60), np.float32)
    array[:, 10:20, 18:28] = 1.0  # x = 9..13.5 mm, y = 5..9.5 mm
    t1 = sitk.GetImageFromArray(array)
    t1.SetSpacing((0.5, 0.5, 1.0))
    shift = sitk.TranslationTransform(3, (4.0, 0.0, 0.0))  # T2 point -> T1 point
    registered = _t1_volumes(t1, shift).t1_slice(1)
    identity = _t1_volumes(t1, None).t1_slice(1)
    assert registered is not None and identity is not None and registered.shape == (20, 20)
    assert set(np.nonzero(registered[7] > 0.5)[0]) == set(range(5, 10))  # x = 5..9 mm on the T2 grid
    assert set(np.nonzero(identity[7] > 0.5)[0]) == set(range(9, 14))  # unregistered: 4 mm off
    assert _t1_volumes(None, None).t1_slice(0) is None  # type: ignore[arg-type]
