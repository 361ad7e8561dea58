"""One synthetic case: determinism, the label, tumour size, contrast physics, misalignment limits."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from npcseg.io.volume import Grid
from npcseg.synth.acquisition import plan_acquisition, rotation_angle_deg
from npcseg.synth.case import SyntheticCase, synthesize_case
from npcseg.synth.config import SynthConfig, small_config
from npcseg.synth.physics import GTV_TISSUES, TISSUES

SMALL = small_config()


@pytest.fixture(scope="module")
def case() -> SyntheticCase:
    return synthesize_case(0, 7, SMALL)


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def test_same_seed_gives_identical_case(case: SyntheticCase) -> None:
    again = synthesize_case(0, 7, SMALL)
    for sequence in ("t1", "t2", "t1c"):
        assert np.array_equal(_array(case.images[sequence]), _array(again.images[sequence]))
        assert Grid.from_image(case.images[sequence]) == Grid.from_image(again.images[sequence])
    assert np.array_equal(_array(case.label), _array(again.label))
    for sequence in ("t1", "t1c"):
        assert case.transforms[sequence].GetParameters() == again.transforms[sequence].GetParameters()
    assert case.clinical == again.clinical


def test_other_seed_or_index_gives_another_case(case: SyntheticCase) -> None:
    for other in (synthesize_case(0, 8, SMALL), synthesize_case(1, 7, SMALL)):
        assert not np.array_equal(_array(case.images["t2"]), _array(other.images["t2"]))
        assert case.transforms["t1"].GetParameters() != other.transforms["t1"].GetParameters()


def test_grids_follow_the_config(case: SyntheticCase) -> None:
    t2, t1 = Grid.from_image(case.images["t2"]), Grid.from_image(case.images["t1"])
    assert t2.size_xyz == (128, 128, 12)
    assert t1.size_xyz == (64, 64, 12)
    assert t2.spacing_xyz == pytest.approx((1.92, 1.92, 4.0))
    assert t1.spacing_xyz == pytest.approx((3.72, 3.72, 4.0))
    assert t2.direction == pytest.approx(tuple(np.eye(3).ravel()))
    assert case.images["t2"].GetPixelID() == sitk.sitkInt16
    assert _array(case.images["t2"]).min() >= 0


def test_label_is_binary_gtv_on_the_t2_grid(case: SyntheticCase) -> None:
    label = _array(case.label)
    assert case.label.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(label)) == {0, 1}
    assert Grid.from_image(case.label).matches(Grid.from_image(case.images["t2"]))
    tissue = _array(case.tissues["t2"])
    assert np.array_equal(label == 1, np.isin(tissue, [TISSUES.index(name) for name in GTV_TISSUES]))
    volume_ml = label.sum() * np.prod(case.label.GetSpacing()) / 1000
    assert case.clinical["tumour_volume_ml"] == pytest.approx(volume_ml, abs=1e-3)


@pytest.mark.parametrize("case_index", [0, 1, 2, 3])
def test_primary_tumour_area_fraction_is_in_range(case_index: int) -> None:
    low, high = SMALL.tumour_area_fraction_range
    case = synthesize_case(case_index, 11, SMALL)
    tumour = _array(case.tissues["t2"]) == TISSUES.index("tumour")
    per_slice = tumour.reshape(tumour.shape[0], -1).mean(axis=1)
    # The largest cross-section is calibrated to a drawn fraction in [low, high] (to within the calibration's
    # tolerance); the tumour spans a run of slices.
    assert 0.8 * low <= per_slice.max() <= 1.15 * high
    assert (per_slice > 0).sum() >= 3
    label = _array(case.label)
    assert label.reshape(label.shape[0], -1).mean(axis=1).max() <= 2 * high


def _mask(tissue: np.ndarray, names: tuple[str, ...], erode: bool) -> np.ndarray:
    mask = np.isin(tissue, [TISSUES.index(name) for name in names])
    if erode:  # keep voxels away from partial-volume edges (in plane)
        structure = np.zeros((1, 3, 3), dtype=bool)
        structure[0] = True
        mask = ndimage.binary_erosion(mask, structure)
    return mask


@pytest.mark.parametrize("case_index", [0, 1])
def test_each_sequence_shows_only_part_of_the_tumour_contrast(case_index: int) -> None:
    # A finer in-plane matrix than the small preset so that the thin mucosa has voxels of its own.
    config = small_config(t2_matrix=256, t2_spacing_mm=0.96, t1_matrix=128, t1_spacing_mm=1.86, num_previews=0)
    case = synthesize_case(case_index, 2, config)
    means = {}
    for sequence in ("t1", "t2", "t1c"):
        image = _array(case.images[sequence]).astype(float)
        tissue = _array(case.tissues[sequence])
        means[sequence] = {
            "tumour": image[_mask(tissue, ("tumour",), erode=True)].mean(),
            "muscle": image[_mask(tissue, ("muscle",), erode=True)].mean(),
            "mucosa": image[_mask(tissue, ("mucosa", "adenoid"), erode=False)].mean(),
        }
    t1, t2, t1c = means["t1"], means["t2"], means["t1c"]
    # T1: tumour iso- to mildly hypointense to muscle; mucosa clearly brighter than tumour.
    assert 0.75 * t1["muscle"] <= t1["tumour"] <= 1.02 * t1["muscle"]
    assert t1["mucosa"] >= 1.15 * t1["tumour"]
    # T2: tumour bright against muscle, but mucosa in the same range.
    assert t2["tumour"] >= 1.8 * t2["muscle"]
    assert abs(t2["tumour"] - t2["mucosa"]) <= 0.2 * t2["mucosa"]
    # T1c: tumour and mucosa enhance.
    assert t1c["tumour"] >= 1.3 * t1c["muscle"]
    assert t1c["mucosa"] >= 1.3 * t1c["muscle"]


def test_misalignment_stays_within_the_limits() -> None:
    config = SynthConfig(misalignment_mm=4.0, misalignment_deg=3.0)
    angles, shifts = [], []
    for draw in range(200):
        acquisition = plan_acquisition(np.random.default_rng(draw), config, (0.0, 5.0), (-10.0, 10.0))
        t1, t1c = acquisition.transforms["t1"], acquisition.transforms["t1c"]
        center = acquisition.center
        angles.append(rotation_angle_deg(t1))
        shifts.append(np.linalg.norm(t1[:3, :3] @ center + t1[:3, 3] - center))
        assert rotation_angle_deg(t1c) <= 3.0 + 1.0 + 1e-9
        assert np.linalg.norm(t1c[:3, :3] @ center + t1c[:3, 3] - center) <= 4.0 + 1.0 + 1e-9
        assert np.allclose(t1[:3, :3] @ t1[:3, :3].T, np.eye(3))
    assert max(angles) <= 3.0 + 1e-9 and max(shifts) <= 4.0 + 1e-9
    # The limits are used, not just respected.
    assert max(angles) > 2.0 and max(shifts) > 3.0


def test_sitk_transform_matches_the_drawn_motion(case: SyntheticCase) -> None:
    transform = case.transforms["t1"]
    affine = case.acquisition.transforms["t1"]
    points = np.random.default_rng(0).uniform(-80, 80, size=(5, 3))
    for point in points:
        expected = affine[:3, :3] @ point + affine[:3, 3]
        assert np.allclose(transform.TransformPoint([float(v) for v in point]), expected, atol=1e-6)
    assert np.linalg.norm(transform.GetTranslation()) <= SMALL.misalignment_mm + 1e-9
    assert rotation_angle_deg(affine) <= SMALL.misalignment_deg + 1e-9
