"""preprocess_case and its exact inverse to_original_grid on tiny analytic cases (T2 64 x 64 x 6, 0.5 mm)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from npcseg.io.images import read_image, write_image
from npcseg.io.volume import Grid
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.preprocessing.pipeline import preprocess_case, to_original_grid

IDENTITY = PreprocessingConfig(registration_source="identity", slice_size=48)


def dice(first: np.ndarray, second: np.ndarray) -> float:
    first, second = first.astype(bool), second.astype(bool)
    return 2.0 * np.count_nonzero(first & second) / (np.count_nonzero(first) + np.count_nonzero(second))


def original_label(built) -> np.ndarray:
    return sitk.GetArrayFromImage(read_image(built.case.label))


def test_output_shapes_types_and_record(make_case):
    built = make_case()
    result = preprocess_case(built.case, IDENTITY)
    assert result.image.shape == (2, 6, 48, 48) and result.image.dtype == np.float32
    assert result.label.shape == (6, 48, 48) and result.label.dtype == np.uint8
    assert set(np.unique(result.label)) == {0, 1}
    record = json.loads(json.dumps(result.record))  # JSON-able, unchanged by a round trip
    assert record == result.record
    assert record["resampled_grid"]["size_xyz"] == [32, 32, 6]
    assert record["resampled_grid"]["spacing_xyz"] == [1.0, 1.0, 4.0]
    assert record["crop_pad"] == {"shape_yx": [32, 32], "size": 48, "offset_yx": [8, 8]}
    assert record["original_grid"] == Grid.from_image(read_image(built.case.image("t2"))).to_dict()
    assert record["registration"]["t1"]["source"] == "identity"
    for channel in range(2):  # min-max per volume: exactly [0, 1]; the padding is 0
        assert result.image[channel].min() == 0.0 and result.image[channel].max() == 1.0
        assert np.all(result.image[channel][:, :8] == 0) and np.all(result.image[channel][:, :, 40:] == 0)


def test_channel_order_follows_the_config(make_case):
    built = make_case()
    forward = preprocess_case(built.case, IDENTITY)
    swapped = preprocess_case(built.case, IDENTITY.with_changes(sequences=("t2", "t1")))
    np.testing.assert_array_equal(forward.image[0], swapped.image[1])
    np.testing.assert_array_equal(forward.image[1], swapped.image[0])
    assert list(swapped.record["normalization"]) == ["t2", "t1"]


@pytest.mark.parametrize("oblique", [False, True])
def test_target_spacing_equal_to_t2_makes_preprocess_then_inverse_the_identity(make_case, oblique):
    from preprocessing_cases import IDENTITY_DIRECTION, oblique_direction

    built = make_case(direction=oblique_direction() if oblique else IDENTITY_DIRECTION)
    config = IDENTITY.with_changes(target_spacing_yx_mm=(0.5, 0.5), slice_size=80)
    result = preprocess_case(built.case, config)
    assert result.record["resampled_grid"] == result.record["original_grid"]
    back = to_original_grid(result.label, result.record)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), original_label(built))
    t2 = read_image(built.case.image("t2"))
    assert Grid.from_image(back) == Grid.from_image(t2)


def test_inverse_geometry_is_exactly_the_oblique_t2_grid(make_case):
    from preprocessing_cases import oblique_direction

    built = make_case(direction=oblique_direction(25.0, -35.0), origin_xyz=(-112.25, 87.5, -40.75))
    t2 = read_image(built.case.image("t2"))
    assert not np.allclose(t2.GetDirection(), np.eye(3).ravel())
    result = preprocess_case(built.case, IDENTITY)
    for slices in (result.label, result.image[1], result.label.astype(bool)):
        back = to_original_grid(slices, result.record)
        assert back.GetSize() == t2.GetSize()
        assert back.GetOrigin() == t2.GetOrigin()
        assert back.GetSpacing() == t2.GetSpacing()
        assert back.GetDirection() == t2.GetDirection()
    assert to_original_grid(result.label, result.record).GetPixelID() == sitk.sitkUInt8
    assert to_original_grid(result.image[1], result.record).GetPixelID() == sitk.sitkFloat32


def test_resampled_grid_keeps_the_t2_slices_and_field_of_view(make_case):
    from preprocessing_cases import oblique_direction

    built = make_case(direction=oblique_direction())
    result = preprocess_case(built.case, IDENTITY)
    original = Grid.from_dict(result.record["original_grid"])
    resampled = Grid.from_dict(result.record["resampled_grid"])
    for k in range(6):  # slice centres coincide, and so do the outer corners of every slice
        assert np.allclose(original.index_to_physical([31.5, 31.5, k]), resampled.index_to_physical([15.5, 15.5, k]))
        assert np.allclose(original.index_to_physical([-0.5, -0.5, k]), resampled.index_to_physical([-0.5, -0.5, k]))
        assert np.allclose(original.index_to_physical([63.5, 63.5, k]), resampled.index_to_physical([31.5, 31.5, k]))


def test_deu_downsampling_mask_on_preprocessed_grid_round_trips_exactly(make_case, tmp_path):
    built = make_case()
    result = preprocess_case(built.case, IDENTITY)
    rng = np.random.default_rng(0)
    mask = np.zeros_like(result.label)
    mask[:, 8:40, 8:40] = ndimage.binary_opening(rng.random((6, 32, 32)) > 0.6)  # irregular, inside the FOV
    mask[2, 8:40, 8:40] = 1 - mask[2, 8:40, 8:40]  # touching the field-of-view border too
    back = to_original_grid(mask, result.record)
    # The mapped mask becomes a new case's label; preprocessing it again must give the mask back.
    write_image(back, built.case.label)
    again = preprocess_case(built.case, IDENTITY)
    np.testing.assert_array_equal(again.label, mask)


def test_deu_downsampling_label_round_trip_dice(make_case):
    from preprocessing_cases import oblique_direction

    built = make_case(
        size_xyz=(128, 128, 6),
        direction=oblique_direction(),
        sequences=("t1", "t2"),
        scene_kwargs={"head_radii_mm": (28.0, 26.0, 40.0), "tumour_radius_mm": 10.0},
    )
    result = preprocess_case(built.case, IDENTITY.with_changes(slice_size=64))
    back = sitk.GetArrayFromImage(to_original_grid(result.label, result.record))
    value = dice(back, original_label(built))
    print(f"label -> preprocess (0.5 -> 1.0 mm) -> inverse: Dice {value:.4f}")
    assert value >= 0.97


def test_probabilities_are_resampled_linearly_and_cropped_regions_are_zero(make_case):
    built = make_case()
    config = IDENTITY.with_changes(slice_size=24)  # crops the 32 x 32 resampled slices
    result = preprocess_case(built.case, config)
    assert result.record["crop_pad"]["offset_yx"] == [-4, -4]
    probabilities = np.full((6, 24, 24), 0.25, dtype=np.float32)
    back = sitk.GetArrayFromImage(to_original_grid(probabilities, result.record))
    assert back.dtype == np.float32
    # Kept: T2 voxels 8..55 (preprocessed voxels 4..27); inside it, away from its border, the value is 0.25.
    np.testing.assert_allclose(back[:, 10:54, 10:54], 0.25, atol=1e-6)
    assert np.all(back[:, :7] == 0) and np.all(back[:, :, 57:] == 0)
    assert back.min() >= 0.0 and back.max() <= 0.25 + 1e-6


def test_to_original_grid_rejects_a_wrong_shape(make_case):
    result = preprocess_case(make_case().case, IDENTITY)
    with pytest.raises(ValueError, match="expected slices of shape"):
        to_original_grid(np.zeros((5, 48, 48)), result.record)


def structure_centroid(channel: np.ndarray) -> np.ndarray:
    """Centroid (z, y, x) in output voxels of the bright structure, weighted by its excess over 0.6 (above
    the normalised head, 0.29 in T2 and 0.49 in T1; the structure is 1)."""
    return np.asarray(ndimage.center_of_mass(np.clip(channel - 0.6, 0.0, None)))


def test_known_misalignment_with_the_true_transform_aligns_t1_and_t2(make_case):
    from preprocessing_cases import oblique_direction

    built0 = make_case("aligned", direction=oblique_direction())
    size = np.asarray(built0.t2_grid.size_xyz, dtype=float)
    centre = built0.t2_grid.index_to_physical((size - 1) / 2)[0]
    movement = sitk.Euler3DTransform(tuple(centre), 0.02, -0.03, math.radians(6.0), (2.5, -3.0, 1.5))
    built = make_case("moved", direction=oblique_direction(), transform=movement)
    aligned = preprocess_case(built.case, IDENTITY, transforms={"t1": movement})
    t1_centroid = structure_centroid(aligned.image[0])
    t2_centroid = structure_centroid(aligned.image[1])
    distance = np.abs(t1_centroid - t2_centroid)
    print(f"centroid difference (z, y, x) voxels with the true transform: {distance}")
    assert np.all(distance < 0.5)  # well within one output voxel (measured about 0.03)
    naive = preprocess_case(built.case, IDENTITY)  # ignoring the movement leaves them apart
    naive_distance = np.abs(structure_centroid(naive.image[0]) - t2_centroid)
    assert naive_distance.max() > 2.0
    assert aligned.record["registration"]["t1"]["source"] == "given"


def test_register_is_called_with_the_reference_as_fixed(make_case, monkeypatch):
    import npcseg.registration.rigid as rigid

    built = make_case()
    calls = []

    def fake_register(fixed, moving, config):
        calls.append((fixed.GetSize(), moving.GetSize(), config))
        return rigid.RegistrationResult(
            transform=sitk.Euler3DTransform(),
            final_metric=-0.5,
            num_iterations=3,
            seconds=0.0,
            stop_condition="x",
        )

    monkeypatch.setattr(rigid, "register_rigid", fake_register)
    config = IDENTITY.with_changes(registration_source="register")
    result = preprocess_case(built.case, config)
    assert calls == [((64, 64, 6), (32, 32, 6), config.registration)]
    assert result.record["registration"]["t1"]["source"] == "registered"
    assert result.record["registration"]["t1"]["final_metric"] == -0.5


def test_precomputed_without_transforms_is_an_error(make_case):
    with pytest.raises(ValueError, match="precomputed"):
        preprocess_case(make_case().case, IDENTITY.with_changes(registration_source="precomputed"))


def test_missing_sequence_names_the_case_folder_and_sequence(make_case):
    built = make_case(sequences=("t2",))
    with pytest.raises(FileNotFoundError) as error:
        preprocess_case(built.case, IDENTITY)
    assert str(built.case.folder) in str(error.value) and "t1" in str(error.value)


def test_label_off_the_t2_grid_is_refused(make_case):
    built = make_case()
    label = read_image(built.case.label)
    label.SetOrigin(tuple(v + 1.0 for v in label.GetOrigin()))
    write_image(label, built.case.label)
    with pytest.raises(ValueError, match="label does not lie on the t2 grid"):
        preprocess_case(built.case, IDENTITY)


def test_case_without_label(make_case):
    result = preprocess_case(make_case(with_label=False).case, IDENTITY)
    assert result.label is None and result.record["label"] == {"present": False}


def test_fit_spacing_spans_the_slice_size(make_case):
    built = make_case(size_xyz=(64, 48, 6))  # 32 x 24 mm field of view
    config = IDENTITY.with_changes(spacing_from="fit", slice_size=40)
    result = preprocess_case(built.case, config)
    assert result.record["resampled_grid"]["size_xyz"][:2] == [40, 30]
    assert result.record["crop_pad"]["offset_yx"] == [5, 0]


def test_linear_threshold_halving_is_the_two_of_four_rule_and_nearest_picks_one_corner():
    from npcseg.preprocessing.grid import resampled_reference_grid
    from npcseg.preprocessing.pipeline import resample_label

    rng = np.random.default_rng(3)
    mask = (rng.random((3, 20, 24)) > 0.5).astype(np.uint8)
    original = Grid((24, 20, 3), (0.5, 0.5, 4.0), (12.0, -7.0, 3.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    label = original.apply_to(sitk.GetImageFromArray(mask))
    grid = resampled_reference_grid(original, (1.0, 1.0))
    blocks = mask.reshape(3, 10, 2, 12, 2).sum(axis=(2, 4))  # T2 voxels of each new voxel that are foreground
    np.testing.assert_array_equal(resample_label(label, grid, "linear_threshold"), blocks >= 2)
    nearest = resample_label(label, grid, "nearest")
    corners = [mask[:, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
    assert any(np.array_equal(nearest, corner) for corner in corners)
    with pytest.raises(ValueError, match="unknown label resampling"):
        resample_label(label, grid, "cubic")
