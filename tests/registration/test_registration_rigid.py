"""register_rigid recovers known rigid motions between multimodal phantoms (see registration_phantoms.py)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import SimpleITK as sitk
from registration_phantoms import FIXED_SPEC, MOVING_SPEC, GridSpec, oblique_direction, phantom_pair, rigid

from npcseg.io.volume import Grid
from npcseg.registration.config import RegistrationConfig, preset
from npcseg.registration.resample import resample_onto
from npcseg.registration.rigid import RegistrationResult, initial_transform, pyramid_level, register_rigid
from npcseg.registration.tre import evaluation_points, target_registration_error

MOTIONS = [
    ((4.0, -3.0, 5.0), (5.0, -4.0, 3.0)),
    ((-5.0, 2.0, -3.5), (-3.0, 5.0, -4.5)),
]


Case = tuple[sitk.Image, sitk.Image, sitk.Transform, RegistrationResult]


@functools.cache
def _case(index: int) -> Case:
    angles, translation = MOTIONS[index]
    truth = rigid(angles, translation)
    fixed, moving = phantom_pair(truth, seed=index)
    return fixed, moving, truth, register_rigid(fixed, moving, RegistrationConfig())


@pytest.fixture(params=range(len(MOTIONS)), ids=["motion_a", "motion_b"])
def case(request: pytest.FixtureRequest) -> Case:
    """(fixed, moving, truth, result of the default registration), built once per motion."""
    return _case(request.param)


def test_default_recovers_known_motion_below_one_mm(case: Case) -> None:
    fixed, _, truth, result = case
    points = evaluation_points(fixed)
    before = target_registration_error(sitk.Euler3DTransform(), truth, points)
    errors = target_registration_error(result.transform, truth, points)
    assert before.mean() > 4.0  # the motion is real
    assert errors.mean() < 1.0, errors.mean()
    assert errors.max() < 2.0, errors.max()
    assert result.seconds < 10
    assert result.num_iterations > 0
    assert result.final_metric < 0  # Mattes MI is reported negated


def test_transform_convention_resampling_aligns_images(case: Case) -> None:
    """resample_onto(moving, fixed grid, result.transform) matches resampling through the truth."""
    fixed, moving, truth, result = case
    grid = Grid.from_image(fixed)
    registered = sitk.GetArrayFromImage(resample_onto(moving, grid, result.transform))
    ideal = sitk.GetArrayFromImage(resample_onto(moving, grid, truth))
    unregistered = sitk.GetArrayFromImage(resample_onto(moving, grid, None))
    inside = ideal > 0
    error_registered = np.abs(registered - ideal)[inside].mean()
    error_unregistered = np.abs(unregistered - ideal)[inside].mean()
    assert error_registered < 0.25 * error_unregistered
    # the inverse transform would move the image the wrong way
    inverse = resample_onto(moving, grid, result.transform.GetInverse())
    assert np.abs(sitk.GetArrayFromImage(inverse) - ideal)[inside].mean() > 2 * error_registered


def test_deterministic_for_a_seed(case: Case) -> None:
    fixed, moving, _, first = case
    second = register_rigid(fixed, moving, RegistrationConfig())
    assert first.transform.GetParameters() == second.transform.GetParameters()
    assert first.final_metric == second.final_metric
    assert first.num_iterations == second.num_iterations
    assert [stage["metric"] for stage in first.stages] == [stage["metric"] for stage in second.stages]


def test_oblique_lps_fixed_image() -> None:
    """A fixed image stored with flipped (RAS-like) and oblique axes is handled in physical space."""
    truth = rigid((3.0, -4.0, 2.0), (-4.0, 3.0, 5.0))
    fixed_spec = GridSpec(
        size_xyz=FIXED_SPEC.size_xyz,
        spacing_xyz=FIXED_SPEC.spacing_xyz,
        direction=oblique_direction(12.0, -20.0, flip_lr=True),
    )
    moving_spec = GridSpec(
        size_xyz=MOVING_SPEC.size_xyz,
        spacing_xyz=MOVING_SPEC.spacing_xyz,
        direction=oblique_direction(-8.0, 5.0),
        centre=MOVING_SPEC.centre,
    )
    fixed, moving = phantom_pair(truth, fixed_spec, moving_spec, seed=3)
    result = register_rigid(fixed, moving, RegistrationConfig())
    errors = target_registration_error(result.transform, truth, evaluation_points(fixed))
    assert errors.mean() < 1.0, errors.mean()


def test_paper_preset_runs_the_one_plus_one_optimizer() -> None:
    """The paper's settings run and improve on no registration (their accuracy is measured, not promised)."""
    fixed, moving, truth, _ = _case(0)
    result = register_rigid(fixed, moving, preset("paper"))
    assert "OnePlusOne" in result.stop_condition
    assert result.num_iterations == 300
    assert [stage["stage"] for stage in result.stages] == ["level0_x1"]
    points = evaluation_points(fixed)
    before = target_registration_error(initial_transform(fixed, moving, "geometry"), truth, points).mean()
    assert target_registration_error(result.transform, truth, points).mean() < before


def test_qa_record_contents(case: Case) -> None:
    result = case[3]
    record = result.to_dict()
    assert set(record) >= {"final_metric", "num_iterations", "seconds", "stop_condition", "transform", "stages"}
    assert record["num_iterations"] == sum(stage["iterations"] for stage in record["stages"])
    assert record["transform"]["class"] == "Euler3DTransform"
    matrix = np.asarray(result.transform.GetMatrix()).reshape(3, 3)
    expected_angle = math.degrees(math.acos((np.trace(matrix) - 1) / 2))
    assert record["transform"]["rotation_angle_deg"] == pytest.approx(expected_angle)
    assert [stage["stage"] for stage in record["stages"]] == ["level0_x4", "level1_x2", "refine"]


def test_initializations() -> None:
    fixed = FIXED_SPEC.empty_image()
    moving = MOVING_SPEC.empty_image()
    identity = initial_transform(fixed, moving, "identity")
    assert identity.GetParameters() == (0.0,) * 6
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in fixed.GetSize()])
    assert np.allclose(identity.GetCenter(), centre)
    geometry = initial_transform(fixed, moving, "geometry")
    moving_centre = moving.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in moving.GetSize()])
    assert np.allclose(geometry.TransformPoint(centre), moving_centre, atol=1e-6)
    with pytest.raises(ValueError, match="unknown initialization"):
        initial_transform(fixed, moving, "magic")


def test_pyramid_never_shrinks_the_slice_axis() -> None:
    image = sitk.Image([128, 96, 10], sitk.sitkFloat32)
    image.SetSpacing((0.5, 0.5, 4.0))
    level = pyramid_level(image, 2.0, 1.0)
    assert level.GetSize() == (32, 24, 10)
    assert level.GetSpacing() == pytest.approx((2.0, 2.0, 4.0))
    # block averaging keeps the physical extent centred
    assert level.TransformContinuousIndexToPhysicalPoint((15.5, 11.5, 4.5)) == pytest.approx(
        image.TransformContinuousIndexToPhysicalPoint((63.5, 47.5, 4.5))
    )


def test_rejects_two_dimensional_input() -> None:
    image = sitk.Image([8, 8], sitk.sitkFloat32)
    with pytest.raises(ValueError, match="3D"):
        register_rigid(image, image, RegistrationConfig())
