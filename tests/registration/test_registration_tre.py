"""Target registration error against closed-form values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from npcseg.registration.tre import (
    bounding_box_mask,
    evaluation_points,
    head_mask,
    target_registration_error,
    transform_points,
)


def test_translation_gives_its_length_everywhere() -> None:
    truth = sitk.TranslationTransform(3, (3.0, 4.0, 0.0))
    points = np.random.default_rng(0).uniform(-100, 100, (50, 3))
    errors = target_registration_error(sitk.Euler3DTransform(), truth, points)
    assert errors == pytest.approx(np.full(50, 5.0))


def test_rotation_error_grows_with_distance_from_the_centre() -> None:
    angle = math.radians(4.0)
    truth = sitk.Euler3DTransform((10.0, 20.0, 30.0), 0.0, 0.0, angle, (0.0, 0.0, 0.0))
    radius = np.array([0.0, 10.0, 50.0, 100.0])
    points = np.stack([10.0 + radius, np.full(4, 20.0), np.full(4, 30.0)], axis=1)
    errors = target_registration_error(sitk.Euler3DTransform(), truth, points)
    assert errors == pytest.approx(2 * radius * math.sin(angle / 2))


def test_transform_points_matches_simpleitk_for_every_transform_kind() -> None:
    euler = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, 6.0))
    points = np.random.default_rng(1).uniform(-50, 50, (20, 3))
    expected = np.array([euler.TransformPoint(tuple(p)) for p in points])
    for transform in (euler, sitk.Transform(euler), sitk.CompositeTransform([euler])):
        assert transform_points(transform, points) == pytest.approx(expected)
    with pytest.raises(ValueError, match="shape"):
        transform_points(euler, np.zeros((4, 2)))


def test_masks_and_points() -> None:
    array = np.zeros((6, 10, 12), dtype=np.float32)
    array[1:5, 2:8, 3:9] = 100.0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.5, 4.0))
    image.SetOrigin((-10.0, 5.0, 2.0))
    assert sitk.GetArrayFromImage(head_mask(image)).sum() == 4 * 6 * 6
    label = sitk.GetImageFromArray(np.zeros((6, 10, 12), dtype=np.uint8))
    label[4, 3, 2] = 1
    label[6, 5, 3] = 1
    label.CopyInformation(image)
    box = sitk.GetArrayFromImage(bounding_box_mask(label))
    assert box.sum() == 2 * 3 * 3
    points = evaluation_points(image, "label", label=label)
    assert len(points) == 18
    assert points.min(axis=0) == pytest.approx([-10.0 + 4 * 0.5, 5.0 + 3 * 0.5, 2.0 + 2 * 4.0])
    assert len(evaluation_points(image, "head", max_points=10)) == 10
    with pytest.raises(ValueError, match="needs a label"):
        evaluation_points(image, "label")
    with pytest.raises(ValueError, match="empty"):
        bounding_box_mask(sitk.Image(4, 4, 4, sitk.sitkUInt8))
