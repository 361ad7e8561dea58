"""Reference rows of the detection table: the start box (no search) and the ground-truth prior-knowledge policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from detection_tiny_cache import write_tiny_detection_cache

from npcseg.detection.boxes import Box, apply_action, initial_box, iou, recall
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import DetectionSlice, detection_slices
from npcseg.detection.references import (
    PRIOR_POLICY,
    START_BOX,
    prior_policy_box,
    reference_boxes,
    score_reference,
)
from npcseg.detection.reward import prior_action
from npcseg.detection.scores import SUMMARY_FILENAME

TARGET = Box(40.0, 44.0, 60.0, 60.0)  # 20 x 16, inside the 42 x 42 start box (29..71) of a 100 x 100 slice


def _slice(target: Box | None = TARGET) -> DetectionSlice:
    return DetectionSlice(np.zeros((3, 100, 100), dtype=np.float32), target, "case", 0)


def test_start_box_is_the_centred_42_percent_box_whatever_the_image() -> None:
    (box,) = reference_boxes(START_BOX, [_slice()], DetectorConfig())
    assert box.as_tuple() == pytest.approx((29.0, 29.0, 71.0, 71.0))
    assert recall(box, TARGET) == 1.0 and iou(box, TARGET) == pytest.approx(320 / 42**2)


def test_prior_policy_reaches_a_successful_terminal_box_on_an_easy_target() -> None:
    config = DetectorConfig()
    box, steps = prior_policy_box(_slice(), config)
    assert 1 < steps <= config.max_steps
    # it stops where Algorithm 1's terminal action succeeds
    assert recall(box, TARGET) > config.reward.tau_recall and iou(box, TARGET) > config.reward.tau_iou
    assert iou(box, TARGET) > iou(initial_box((100, 100)), TARGET)


def test_prior_policy_with_one_step_is_one_prior_action() -> None:
    config = DetectorConfig(max_steps=1)
    start = initial_box((100, 100))
    expected = apply_action(start, prior_action(start, TARGET, (100, 100), config), (100, 100))
    box, steps = prior_policy_box(_slice(), config)
    assert steps == 1 and box == expected


def test_prior_policy_needs_a_target_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="no target box"):
        prior_policy_box(_slice(None), DetectorConfig())
    with pytest.raises(ValueError, match="unknown reference"):
        reference_boxes("oracle", [_slice()], DetectorConfig())


def test_score_reference_writes_the_scores_of_every_tumour_slice(tmp_path: Path) -> None:
    write_tiny_detection_cache(tmp_path / "cache", num_cases=2)
    config = DetectorConfig(max_steps=5)
    summary = score_reference(PRIOR_POLICY, tmp_path / "cache", ["case000", "case001"], config, tmp_path / "out")
    slices = detection_slices(tmp_path / "cache", ["case000", "case001"], config.sequences)
    boxes = [prior_policy_box(item, config)[0] for item in slices]
    assert summary.num_slices == len(slices) == 4
    expected = [iou(box, item.target) for box, item in zip(boxes, slices, strict=True)]
    assert summary.iou_mean == pytest.approx(np.mean(expected))
    record = json.loads((tmp_path / "out" / SUMMARY_FILENAME).read_text())
    assert record["extra"]["reference"] == PRIOR_POLICY and record["extra"]["uses_ground_truth"] is True
    with pytest.raises(ValueError, match="no case ids"):
        score_reference(START_BOX, tmp_path / "cache", [], config, tmp_path / "none")
