"""Centred zero-pad / crop of slices to S x S and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcseg.preprocessing.cropping import CropPad


@pytest.mark.parametrize(
    ("shape_yx", "size", "offset_yx"),
    [
        ((200, 200), 256, (28, 28)),  # even, padded
        ((201, 199), 256, (27, 28)),  # odd, padded: the odd voxel goes after
        ((300, 300), 256, (-22, -22)),  # even, cropped
        ((301, 257), 256, (-22, 0)),  # odd, cropped: the odd voxel is removed at the end
        ((300, 100), 256, (-22, 78)),  # cropped along y, padded along x
        ((256, 256), 256, (0, 0)),
        ((7, 6), 5, (-1, 0)),
    ],
)
def test_offsets_and_round_trip(shape_yx, size, offset_yx):
    crop_pad = CropPad.centred(shape_yx, size)
    assert crop_pad.offset_yx == offset_yx
    rng = np.random.default_rng(1)
    slices = rng.random((3, *shape_yx)).astype(np.float32) + 1.0  # never 0, so padding is visible
    output = crop_pad.apply(slices)
    assert output.shape == (3, size, size)
    restored = crop_pad.invert(output)
    kept = restored != 0
    np.testing.assert_array_equal(restored[kept], slices[kept])  # kept voxels come back exactly
    assert np.count_nonzero(kept[0]) == min(shape_yx[0], size) * min(shape_yx[1], size)
    assert np.count_nonzero(output[0]) == np.count_nonzero(kept[0])
    if shape_yx[0] <= size and shape_yx[1] <= size:
        np.testing.assert_array_equal(restored, slices)  # pure padding is undone exactly
    # the centre of the input lands within half a voxel of the centre of the output
    for axis in range(2):
        assert abs((shape_yx[axis] - 1) / 2 + offset_yx[axis] - (size - 1) / 2) <= 0.5


@settings(max_examples=80, deadline=None)
@given(height=st.integers(1, 70), width=st.integers(1, 70), size=st.integers(1, 64))
def test_apply_then_invert_keeps_exactly_the_central_window(height, width, size):
    crop_pad = CropPad.centred((height, width), size)
    slices = np.arange(1, height * width + 1, dtype=np.int32).reshape(height, width)
    restored = crop_pad.invert(crop_pad.apply(slices))
    window_y = slice(max(0, -crop_pad.offset_yx[0]), max(0, -crop_pad.offset_yx[0]) + min(height, size))
    window_x = slice(max(0, -crop_pad.offset_yx[1]), max(0, -crop_pad.offset_yx[1]) + min(width, size))
    expected = np.zeros_like(slices)
    expected[window_y, window_x] = slices[window_y, window_x]
    np.testing.assert_array_equal(restored, expected)
    # and invert then apply is the identity on anything that is zero outside the kept window
    output = crop_pad.apply(slices)
    np.testing.assert_array_equal(crop_pad.apply(crop_pad.invert(output)), output)


def test_dict_round_trip_and_bad_input():
    crop_pad = CropPad.centred((301, 199), 256)
    assert CropPad.from_dict(crop_pad.to_dict()) == crop_pad
    with pytest.raises(ValueError, match="expected slices of shape"):
        crop_pad.apply(np.zeros((2, 300, 199)))
    with pytest.raises(ValueError, match="expected slices of shape"):
        crop_pad.invert(np.zeros((2, 255, 256)))
    with pytest.raises(ValueError, match="slice size"):
        CropPad.centred((10, 10), 0)
