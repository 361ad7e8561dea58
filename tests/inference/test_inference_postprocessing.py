"""3D post-processing of stacked 2D predictions on hand-built volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from npcseg.inference.postprocessing import PostprocessingConfig, label_components, postprocess

PAPER = PostprocessingConfig()  # drop_single_slice, 26-connectivity


def _volume() -> np.ndarray:
    return np.zeros((6, 12, 12), dtype=np.uint8)


def test_component_on_one_slice_is_dropped_and_one_spanning_two_slices_is_kept() -> None:
    mask = _volume()
    mask[2, 1:4, 1:4] = 1  # 9 voxels, one slice: a 2D false positive
    mask[3:5, 6:10, 6:10] = 1  # 32 voxels over two slices
    result = postprocess(mask, PAPER)
    expected = _volume()
    expected[3:5, 6:10, 6:10] = 1
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == mask.dtype


def test_a_large_single_slice_component_is_dropped_whatever_its_size() -> None:
    mask = _volume()
    mask[0, :, :] = 1
    assert not postprocess(mask, PAPER).any()


@pytest.mark.parametrize(
    ("second_voxel", "connectivity", "kept"),
    [
        ((1, 5, 5), 6, True),  # face neighbour on the next slice: one component over two slices
        ((1, 6, 5), 6, False),  # edge neighbour: two single-slice components under 6-connectivity
        ((1, 6, 5), 18, True),
        ((1, 6, 5), 26, True),
        ((1, 6, 6), 6, False),  # corner neighbour: joined only under 26-connectivity
        ((1, 6, 6), 18, False),
        ((1, 6, 6), 26, True),
    ],
)
def test_diagonal_adjacency_across_slices_depends_on_connectivity(
    second_voxel: tuple[int, int, int], connectivity: int, kept: bool
) -> None:
    mask = _volume()
    mask[0, 5, 5] = 1
    mask[second_voxel] = 1
    result = postprocess(mask, PostprocessingConfig(connectivity=connectivity))
    np.testing.assert_array_equal(result, mask if kept else _volume())


def test_largest_component_keeps_only_the_biggest() -> None:
    mask = _volume()
    mask[0:2, 0:2, 0:2] = 1  # 8 voxels
    mask[3:6, 5:9, 5:9] = 1  # 48 voxels
    mask[1, 10:12, 10:12] = 1  # 4 voxels
    result = postprocess(mask, PostprocessingConfig(mode="largest_component"))
    expected = _volume()
    expected[3:6, 5:9, 5:9] = 1
    np.testing.assert_array_equal(result, expected)


def test_largest_component_keeps_a_single_slice_component_when_it_is_the_biggest() -> None:
    mask = _volume()
    mask[2, 0:5, 0:5] = 1  # 25 voxels on one slice
    mask[3:5, 8, 8] = 1  # 2 voxels on two slices
    result = postprocess(mask, PostprocessingConfig(mode="largest_component"))
    assert result.sum() == 25 and result[2, 0:5, 0:5].all()


@pytest.mark.parametrize("mode", ["drop_single_slice", "largest_component", "none"])
def test_empty_stays_empty(mode: str) -> None:
    result = postprocess(np.zeros((4, 8, 8), dtype=bool), PostprocessingConfig(mode=mode))  # type: ignore[arg-type]
    assert result.shape == (4, 8, 8) and result.dtype == bool and not result.any()


def test_mode_none_and_disabled_return_the_mask_unchanged() -> None:
    mask = _volume()
    mask[2, 1:4, 1:4] = 1
    for config in (PostprocessingConfig(mode="none"), PostprocessingConfig(enabled=False)):
        result = postprocess(mask, config)
        np.testing.assert_array_equal(result, mask)
        assert result is not mask


def test_boolean_masks_keep_their_dtype() -> None:
    mask = np.zeros((3, 5, 5), dtype=bool)
    mask[0:2, 1, 1] = True
    mask[2, 4, 4] = True
    result = postprocess(mask)
    assert result.dtype == bool
    assert result.sum() == 2 and result[0:2, 1, 1].all()


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_components_agree_with_scipy(connectivity: int) -> None:
    """SimpleITK (6, 26) and scipy (18) give the same partition as scipy's labelling with the matching structure."""
    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    mask = np.random.default_rng(connectivity).random((6, 16, 16)) < 0.25
    labels, count = label_components(mask, connectivity)
    reference, reference_count = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, rank))
    assert count == reference_count
    pairs = set(zip(labels[mask].tolist(), reference[mask].tolist(), strict=True))
    assert len(pairs) == count  # a one-to-one correspondence of labels


def test_invalid_settings_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="connectivity"):
        PostprocessingConfig(connectivity=8)
    with pytest.raises(ValueError, match="mode"):
        PostprocessingConfig(mode="opening")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3D"):
        postprocess(np.ones((8, 8), dtype=np.uint8))
