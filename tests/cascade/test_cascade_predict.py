"""The cascade with stand-in models: exact paste-back geometry, nothing on tumour-free slices, channels by name."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from cascade_cases import FixedPresence, MaskChannelDetector, ThresholdNetwork, crossval_cases, tiny_pieces

from npcseg.cascade.crops import paste_crop
from npcseg.cascade.predict import CascadeConfig, predict_cascade
from npcseg.detection.boxes import Box
from npcseg.inference.postprocessing import PostprocessingConfig
from npcseg.inference.runs import SliceSegmenter


def _volume() -> tuple[np.ndarray, np.ndarray]:
    """6 slices of 40 x 40: tumour rectangles (sides multiples of 4, so the 1.5x windows lie on pixel edges) on
    slices 1-4, overlapping from slice to slice; channel 0 = the mask, channel 1 = noise."""
    label = np.zeros((6, 40, 40), dtype=np.uint8)
    label[1, 10:18, 12:20] = 1
    label[2, 12:20, 12:16] = 1
    label[3, 12:16, 14:22] = 1
    label[4, 14:18, 18:22] = 1
    noise = np.random.default_rng(0).random(label.shape, dtype=np.float32) * 0.4
    return np.stack([label.astype(np.float32), noise]), label


def _config(**changes: object) -> CascadeConfig:
    return CascadeConfig(scale=1.5, crop_size=48, **changes)  # type: ignore[arg-type]


def test_crop_segment_and_paste_back_reproduce_the_tumour_exactly() -> None:
    image, label = _volume()
    presence = FixedPresence(np.where(label.reshape(6, -1).any(axis=1), 0.9, 0.1))
    detector = MaskChannelDetector()
    result = predict_cascade(image, detector, SliceSegmenter(ThresholdNetwork(), ("t1", "t2")), presence, _config())
    np.testing.assert_array_equal(result.mask, label)
    assert result.probability.dtype == np.float32 and result.probability.shape == label.shape
    np.testing.assert_array_equal(result.probability >= 0.5, label.astype(bool))
    assert [box is not None for box in result.boxes] == [False, True, True, True, True, False]
    assert result.detections[1] == Box(10, 12, 18, 20) and result.boxes[1] == Box(8, 10, 20, 22)  # 1.5 times
    assert len(detector.calls) == 4


def test_tumour_free_slices_get_no_box_and_an_empty_output_even_with_a_bright_distractor() -> None:
    image, _ = _volume()
    image[0, 5, 20:30, 20:30] = 1.0  # looks like tumour to the stand-in detector and segmenter, but no presence
    presence = FixedPresence(np.array([0.2, 0.9, 0.8, 0.7, 0.6, 0.3]))
    result = predict_cascade(
        image, MaskChannelDetector(), SliceSegmenter(ThresholdNetwork(), ("t1", "t2")), presence, _config()
    )
    assert result.boxes[0] is None and result.boxes[5] is None
    assert not result.probability[[0, 5]].any() and not result.mask[[0, 5]].any()
    empty = predict_cascade(
        image,
        MaskChannelDetector(),
        SliceSegmenter(ThresholdNetwork(), ("t1", "t2")),
        FixedPresence(np.zeros(6)),
        _config(),
    )
    assert not empty.probability.any() and empty.boxes == [None] * 6 and not empty.presence.any()


def test_presence_z_rules_drop_an_isolated_slice_and_fill_a_gap() -> None:
    image, _ = _volume()
    presence = FixedPresence(np.array([0.9, 0.1, 0.1, 0.9, 0.1, 0.9]))  # gap at 4 filled; slice 0 alone: dropped
    segmenter = SliceSegmenter(ThresholdNetwork(), ("t1", "t2"))
    result = predict_cascade(image, MaskChannelDetector(), segmenter, presence, _config())
    assert result.presence.tolist() == [False, False, False, True, True, True]
    loose = predict_cascade(image, MaskChannelDetector(), segmenter, presence, _config(presence_min_run=1))
    assert loose.presence.tolist() == [True, False, False, True, True, True]


def test_every_window_pixel_takes_the_crop_value_and_nothing_outside_it() -> None:
    class Constant(ThresholdNetwork):
        def forward(self, images):  # type: ignore[no-untyped-def]
            return images[:, :1] * 0 + 2.0  # sigmoid(2) everywhere in the crop

    image, _ = _volume()
    config = _config(postprocessing=PostprocessingConfig(mode="none"))
    detector = MaskChannelDetector(fallback=Box(0.3, 0.6, 5.2, 7.7))
    result = predict_cascade(image, detector, SliceSegmenter(Constant(), ("t1", "t2")), None, config)
    value = np.float32(1 / (1 + np.exp(-2.0)))
    for z in range(6):
        window = result.boxes[z]
        assert window is not None
        np.testing.assert_allclose(result.probability[z], paste_crop(np.full((48, 48), value), window, (40, 40)))
    assert result.mask[0].sum() == result.probability[0].astype(bool).sum()  # fallback box, presence None: all run


def test_models_take_their_channels_by_name() -> None:
    image, label = _volume()
    swapped = image[::-1].copy()  # channels t2, t1
    detector, segmenter = MaskChannelDetector(("t1",)), SliceSegmenter(ThresholdNetwork(), ("t1",))
    presence = FixedPresence(np.where(label.reshape(6, -1).any(axis=1), 0.9, 0.1), ("t2", "t1"))
    result = predict_cascade(swapped, detector, segmenter, presence, _config(), image_sequences=("t2", "t1"))
    np.testing.assert_array_equal(result.mask, label)
    with pytest.raises(ValueError, match="image_sequences"):
        predict_cascade(swapped, detector, segmenter, presence, _config())
    described = result.describe()
    assert described["presence"][0] is False and described["windows"][1] == [8.0, 10.0, 20.0, 22.0]


def test_a_tiny_table_6_cross_validates_whole_slices_and_the_cascade_on_the_same_folds(tmp_path: Path) -> None:
    from npcseg.config import config_to_dict
    from npcseg.evaluation.comparison import load_comparison, run_comparison

    cases = crossval_cases()
    tiny = cases.build_tiny_cohort(tmp_path, num_cases=4)
    base = config_to_dict(cases.tiny_cv_config(num_folds=2))
    detector, presence = tiny_pieces()
    rows = [
        {"name": "whole", "folder": "whole"},
        {"name": "cascade", "cascade": {"crop_size": 32, "detector": detector, "presence": presence}},
    ]
    path = tmp_path / "table6.yaml"
    path.write_text(yaml.safe_dump({"title": "tiny 6", "reference": "whole", "base": base, "rows": rows}))
    comparison = load_comparison([path])
    assert comparison.rows[0].cascade is None and comparison.rows[1].cascade is not None
    assert comparison.rows[1].cascade.detector.epochs == 1 and comparison.rows[1].cascade.scale == 1.5
    out = tmp_path / "compare"
    result = run_comparison(tiny.cohort, tiny.cache, out, comparison, progress=False)
    assert (out / "whole" / "splits.json").read_text() == (out / "cascade" / "splits.json").read_text()
    cascade = result.rows["cascade"]
    assert sorted(row["case_id"] for row in cascade.metrics) == list(tiny.case_ids)
    summary = json.loads((out / "cascade" / "summary.json").read_text())
    assert summary["detection"]["num_slices"] == 4 * 3  # every held-out tumour slice scored
    assert summary["presence"]["num_slices"] == 4 * 5 and summary["presence"]["num_tumour_slices"] == 12
    assert set(summary["metrics"]) >= {"dice", "hd95_mm"}
    for fold in (0, 1):
        folder = out / "cascade" / f"fold_{fold}"
        for piece in ("detector/detector.pt", "crops/crops.yaml", "segmenter/checkpoint_best.pt", "presence/run.json"):
            assert (folder / piece).is_file(), piece
    first = (out / "cascade" / "metrics.csv").read_text()
    run_comparison(tiny.cohort, tiny.cache, out, comparison, progress=False)  # resumes: nothing retrained
    assert (out / "cascade" / "metrics.csv").read_text() == first
    assert "| cascade |" in (out / "table.md").read_text()

    # a raw case through the fold's three runs gives the mask the cross-validation wrote for it
    from npcseg.cascade.crossval import CascadeExperimentConfig
    from npcseg.cascade.predictor import CascadePredictor
    from npcseg.io.cohort import cases_of
    from npcseg.io.images import read_image

    fold = out / "cascade" / "fold_0"
    settings = comparison.rows[1].cascade
    assert isinstance(settings, CascadeExperimentConfig)
    config = settings.prediction_config(
        comparison.rows[1].config.training.threshold, comparison.rows[1].config.postprocessing
    )
    predictor = CascadePredictor(fold / "detector", fold / "segmenter", fold / "presence", config)
    held_out = json.loads((fold / "fold.json").read_text())["held_out"][0]
    case = next(case for case in cases_of(tiny.cohort) if case.case_id == held_out)
    # the scored detection of each tumour slice is the detector's box on it, whether the cascade ran it there or not
    from npcseg.detection.boxes import box_of_mask
    from npcseg.preprocessing import load_preprocessed
    from npcseg.preprocessing.cache import load_cache_config

    described = json.loads((fold / "cascade" / f"{held_out}.json").read_text())
    preprocessed = load_preprocessed(tiny.cache, held_out)
    assert preprocessed.label is not None
    channels = [load_cache_config(tiny.cache).sequences.index(name) for name in predictor.detector.sequences]
    for z, stored in enumerate(described["target_detections"]):
        if box_of_mask(preprocessed.label[z] != 0) is None:
            assert stored is None
        else:
            expected_box = predictor.detector.detect(preprocessed.image[channels, z]).box
            np.testing.assert_allclose(stored, expected_box.as_tuple())
    prediction = predictor.predict_case(case)
    expected = read_image(fold / "predictions" / f"{held_out}.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(prediction.mask), sitk.GetArrayFromImage(expected))
    assert prediction.mask.GetSpacing() == expected.GetSpacing() and predictor.describe()["method"] == "seqseg"
    from npcseg.cascade.training import load_trained_cascade

    # the fold folder as `npcseg predict --method seqseg --cascade` reads it gives the same mask
    loaded = load_trained_cascade(fold).predict_case(case)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(loaded.mask), sitk.GetArrayFromImage(expected))


class FindsNothingOnItsSecondSlice(MaskChannelDetector):
    def detect(self, image: np.ndarray) -> SimpleNamespace | None:
        found = super().detect(image)
        return None if len(self.calls) == 2 else found


def test_a_slice_the_detector_finds_nothing_on_is_left_empty() -> None:
    image, label = _volume()
    presence = FixedPresence(np.where(label.reshape(6, -1).any(axis=1), 0.9, 0.1))  # slices 1-4, in order
    segmenter = SliceSegmenter(ThresholdNetwork(), ("t1", "t2"))
    result = predict_cascade(image, FindsNothingOnItsSecondSlice(), segmenter, presence, _config())
    assert result.detections[2] is None and result.boxes[2] is None and not result.probability[2].any()
    assert all(result.boxes[z] is not None and result.probability[z].any() for z in (1, 3, 4))


class BoxesTheMaskOrNothing(MaskChannelDetector):
    """Like a heat-map detector: the box of channel 0 >= 0.5, no detection where it is empty."""

    def detect(self, image: np.ndarray) -> SimpleNamespace | None:
        found = super().detect(image)
        return found if image[0].max() >= 0.5 else None


def test_without_a_presence_classifier_the_detector_decides() -> None:
    image, label = _volume()
    boxes_the_mask_or_nothing = BoxesTheMaskOrNothing()
    segmenter = SliceSegmenter(ThresholdNetwork(), ("t1", "t2"))
    result = predict_cascade(image, boxes_the_mask_or_nothing, segmenter, None, _config())
    holds_tumour = label.reshape(6, -1).any(axis=1)
    assert list(result.presence) == list(holds_tumour) and list(result.presence_probability) == list(holds_tumour * 1.0)
    assert len(boxes_the_mask_or_nothing.calls) == 6  # every slice went to the detector
    np.testing.assert_array_equal(result.mask, label)  # no box, no output on the tumour-free slices


def test_no_presence_classifier_needs_the_heatmap_detector() -> None:
    from npcseg.cascade.crossval import CascadeExperimentConfig

    with pytest.raises(ValueError, match="needs detector_kind: heatmap"):
        CascadeExperimentConfig(presence_classifier=False)
    assert not CascadeExperimentConfig(detector_kind="heatmap", presence_classifier=False).presence_classifier
