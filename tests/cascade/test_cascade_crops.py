"""Box crops and the crop cache: exact geometry on hand-built slices, the cache format the trainer reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cascade_cases import write_fake_cache

from npcseg.cascade.crops import build_crop_cache, crop_label, crop_slice, jittered_box, paste_crop
from npcseg.data.dataset import SliceDataset
from npcseg.detection.boxes import Box, box_of_mask
from npcseg.preprocessing.cache import load_cache_config, load_preprocessed


def _ramp(height: int = 32, width: int = 32) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    return (100.0 * rows + columns).astype(np.float32)


def test_a_box_on_pixel_edges_at_its_own_size_is_the_plain_window() -> None:
    image = _ramp()
    crop = crop_slice(np.stack([image, -image]), Box(4, 8, 12, 16), 8)
    np.testing.assert_array_equal(crop[0], image[4:12, 8:16])
    np.testing.assert_array_equal(crop[1], -image[4:12, 8:16])


def test_bilinear_upsampling_samples_a_linear_ramp_at_the_new_pixel_centres() -> None:
    # output pixel i of a box from row 4, 8 pixels tall, in 16 pixels: centre 4 + (i + 0.5) / 2, index 3.75 + i / 2
    crop = crop_slice(_ramp(), Box(4, 8, 12, 16), 16)
    index = np.arange(16) / 2
    expected = 100.0 * (3.75 + index)[:, None] + (7.75 + index)[None, :]
    np.testing.assert_allclose(crop, expected, atol=1e-3)


def test_samples_outside_the_slice_are_zero_and_border_half_pixels_repeat_the_border() -> None:
    image = np.ones((10, 10), dtype=np.float32)
    crop = crop_slice(image, Box(-5, -5, 5, 5), 10)  # the top-left quarter of the window is outside
    np.testing.assert_array_equal(crop[:5, :], 0)
    np.testing.assert_array_equal(crop[:, :5], 0)
    np.testing.assert_array_equal(crop[5:, 5:], 1)  # includes the half pixel between index -0.5 and 0


@pytest.mark.parametrize("sampling", ["linear_threshold", "nearest"])
def test_labels_upsampled_by_a_whole_factor_on_pixel_edges(sampling: str) -> None:
    label = np.zeros((20, 20), dtype=np.uint8)
    label[6:10, 7:12] = 1
    crop = crop_label(label, Box(4, 5, 12, 13), 32, sampling)  # 8 x 8 pixels -> 32 x 32: factor 4
    expected = np.kron(label[4:12, 5:13], np.ones((4, 4), dtype=np.uint8))
    if sampling == "linear_threshold":
        # the crop pixel just inside an edge samples at 5/8 of the way from the outside pixel centre: 0.625 >= 0.5,
        # but at a corner 0.625 ** 2 = 0.39 < 0.5, so bilinear + threshold rounds off exactly the four corner pixels
        for row, column in ((8, 8), (8, 27), (23, 8), (23, 27)):
            assert expected[row, column] == 1
            expected[row, column] = 0
    np.testing.assert_array_equal(crop, expected)


def test_linear_threshold_keeps_a_disc_area_at_a_non_integer_factor() -> None:
    rows, columns = np.mgrid[0:64, 0:64]
    disc = ((rows - 31.5) ** 2 + (columns - 30.5) ** 2 <= 10.0**2).astype(np.uint8)
    window = box_of_mask(disc)
    assert window is not None
    crop = crop_label(disc, window.scaled(1.5), 37)  # 30 pixels -> 37: factor 37 / 30
    factor = 37 / window.scaled(1.5).height
    assert crop.sum() == pytest.approx(disc.sum() * factor**2, rel=0.03)


def test_a_thresholded_crop_pasted_back_reproduces_a_square_exactly() -> None:
    mask = np.zeros((40, 40), dtype=np.float32)
    mask[10:18, 20:26] = 1
    box = Box(8, 18, 20, 28)  # 12 x 10 pixels on pixel edges
    crop = (crop_slice(mask, box, 60) >= 0.5).astype(np.float32)  # factors 5 and 6
    np.testing.assert_array_equal(paste_crop(crop, box, mask.shape), mask)


def test_a_constant_crop_fills_exactly_the_pixels_whose_centre_is_in_the_box() -> None:
    pasted = paste_crop(np.full((7, 7), 0.8, dtype=np.float32), Box(2.4, 3.6, 5.5, 9.49), (12, 12))
    expected = np.zeros((12, 12), dtype=np.float32)
    expected[2:5, 4:9] = 0.8  # row centres 2.5 .. 4.5 (5.5 is the open end), column centres 4.5 .. 8.5
    np.testing.assert_array_equal(pasted, expected)


def test_paste_is_zero_outside_the_box_and_close_to_the_mask_inside_for_any_box() -> None:
    rng = np.random.default_rng(4)
    rows, columns = np.mgrid[0:48, 0:48]
    mask = ((rows - 20.3) ** 2 / 36 + (columns - 25.1) ** 2 / 64 <= 1).astype(np.float32)
    for _ in range(5):
        top, left = rng.uniform(5, 12), rng.uniform(9, 15)
        box = Box(top, left, top + rng.uniform(18, 26), left + rng.uniform(22, 30))
        pasted = paste_crop(crop_slice(mask, box, 64), box, mask.shape)
        inside = (rows + 0.5 >= box.top) & (rows + 0.5 < box.bottom) & (columns + 0.5 >= box.left)
        inside &= columns + 0.5 < box.right
        assert not pasted[~inside].any()
        binary = pasted >= 0.5
        dice = 2 * (binary & (mask > 0)).sum() / (binary.sum() + mask.sum())
        assert dice > 0.97


def test_jitter_moves_the_centre_and_size_within_the_stated_bounds() -> None:
    box = Box(10, 20, 30, 60)
    rng = np.random.default_rng(0)
    assert jittered_box(box, 0.0, rng) == box
    for _ in range(50):
        moved = jittered_box(box, 0.1, rng)
        assert abs(moved.centre[0] - box.centre[0]) <= 0.1 * box.height + 1e-9
        assert abs(moved.centre[1] - box.centre[1]) <= 0.1 * box.width + 1e-9
        assert 0.9 * box.height - 1e-9 <= moved.height <= 1.1 * box.height + 1e-9
        assert 0.9 * box.width - 1e-9 <= moved.width <= 1.1 * box.width + 1e-9


def test_the_crop_cache_is_a_preprocessed_cache_of_tumour_slice_crops(tmp_path: Path) -> None:
    cache = write_fake_cache(tmp_path / "cache")
    out = build_crop_cache(cache, ["case0", "case1", "case2"], tmp_path / "crops", size=16, jitter=0.1, seed=3)
    assert load_cache_config(out).slice_size == 16 and load_cache_config(out).sequences == ("t1", "t2")
    assert not (out / "cases" / "case2.npz").exists()  # no tumour, no crops
    data = SliceDataset(out, ["case0", "case1"], ("t2", "t1"))
    assert len(data) == 6 and data.num_tumour_slices == 6
    case = load_preprocessed(out, "case1")
    assert case.image.shape == (2, 3, 16, 16) and case.label is not None
    for crop, z_label, entry in zip(case.image[0], case.label, case.record["crops"], strict=True):
        window = Box(*entry["window"])
        assert entry["target_box"] == [9.0, 10.0, 17.0, 18.0] and entry["z"] in (1, 2, 3)
        assert window.height == pytest.approx(1.5 * 8, rel=0.11)  # 1.5 times the box, size jittered by <= 10 %
        np.testing.assert_array_equal(z_label, crop >= 0.5)  # image channel 0 is the mask itself
    again = build_crop_cache(cache, ["case0", "case1", "case2"], tmp_path / "crops", size=16, jitter=0.1, seed=3)
    assert load_preprocessed(again, "case1").record == case.record


def test_the_crop_cache_refuses_other_settings_and_foreign_folders(tmp_path: Path) -> None:
    cache = write_fake_cache(tmp_path / "cache")
    build_crop_cache(cache, ["case0"], tmp_path / "crops", size=16)
    with pytest.raises(ValueError, match="other settings"):
        build_crop_cache(cache, ["case0"], tmp_path / "crops", size=16, scale=2.0)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a crop cache"):
        build_crop_cache(cache, ["case0"], tmp_path / "other")


def test_the_trainer_trains_unchanged_on_a_crop_cache(tmp_path: Path) -> None:
    from npcseg.models.registry import tiny_config
    from npcseg.training.config import TrainingConfig
    from npcseg.training.trainer import train

    cache = write_fake_cache(tmp_path / "cache")
    crops = build_crop_cache(cache, ["case0", "case1"], tmp_path / "crops", size=32)
    options = {key: value for key, value in vars(tiny_config("ranet")).items() if key != "sequences"}
    config = TrainingConfig(model="ranet", model_options=options, sequences=("t1", "t2"), epochs=1, batch_size=3)
    result = train(crops, tmp_path / "run", config, ["case0"], ["case1"], progress=False)
    assert result.num_epochs == 1 and result.num_steps == 1
    assert load_cache_config(tmp_path / "run").slice_size == 32  # the run's preprocessing.yaml is the crop cache's
