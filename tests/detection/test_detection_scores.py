"""Detection scores against hand-computed recall / IoU, the Tables 1-2 summary, the files, and the figures."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from npcseg.detection.boxes import Box
from npcseg.detection.figures import plot_convergence, plot_episode
from npcseg.detection.scores import (
    SLICES_FILENAME,
    SUMMARY_FILENAME,
    read_detection_summary,
    score_boxes,
    write_detection_scores,
    write_slice_scores,
)

TARGET = Box(10.0, 10.0, 20.0, 20.0)  # 10 x 10
PREDICTED = (
    Box(10.0, 10.0, 20.0, 20.0),  # exact: recall 1, IoU 1
    Box(5.0, 5.0, 25.0, 25.0),  # 20 x 20 around it: recall 1, IoU 100 / 400
    Box(10.0, 15.0, 20.0, 25.0),  # half overlapping: recall 0.5, IoU 50 / 150
    Box(30.0, 30.0, 40.0, 40.0),  # disjoint: recall 0, IoU 0
)


def test_score_boxes_matches_hand_values() -> None:
    summary = score_boxes(PREDICTED, [TARGET] * 4)
    assert summary.num_slices == 4
    assert summary.recall_min == 0.0 and summary.recall_max == 1.0
    assert summary.recall_mean == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert summary.iou_min == 0.0 and summary.iou_max == 1.0
    assert summary.iou_mean == pytest.approx((1 + 0.25 + 1 / 3 + 0) / 4)
    assert summary.fraction_recall_095 == pytest.approx(0.5)
    # x1.5 about the centre: the exact and the large box still hold the target; the half-overlapping box grows to
    # columns 12.5..27.5 (7.5 of the target's 10 columns); the disjoint box (27.5..42.5) still misses it
    assert summary.enlarged_recall_min == 0.0
    assert summary.enlarged_recall_mean == pytest.approx((1 + 1 + 0.75 + 0) / 4)


def test_a_missing_detection_scores_zero_everywhere(tmp_path: Path) -> None:
    summary = score_boxes([PREDICTED[0], None], [TARGET, TARGET])
    assert summary.recall_mean == summary.iou_mean == summary.enlarged_recall_mean == pytest.approx(0.5)
    assert summary.recall_min == summary.iou_min == summary.enlarged_recall_min == 0.0
    write_detection_scores(tmp_path, ["a", "a"], [0, 1], [PREDICTED[0], None], [TARGET, TARGET])
    with (tmp_path / SLICES_FILENAME).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[1]["box_top"] == "" and rows[1]["target_top"] == "10.000" and float(rows[1]["recall"]) == 0.0


def test_recall_threshold_is_inclusive_and_empty_gives_nan() -> None:
    target = Box(0.0, 0.0, 10.0, 10.0)
    exactly_095 = Box(0.0, 0.0, 9.5, 10.0)  # recall 0.95 exactly
    assert score_boxes([exactly_095], [target]).fraction_recall_095 == 1.0
    empty = score_boxes([], [])
    assert empty.num_slices == 0 and math.isnan(empty.recall_mean) and math.isnan(empty.iou_min)
    with pytest.raises(ValueError, match="predicted boxes"):
        score_boxes(PREDICTED, [TARGET])


def test_write_detection_scores_files(tmp_path: Path) -> None:
    summary = write_detection_scores(
        tmp_path / "scores", ["a", "a", "b", "b"], [3, 4, 0, 7], PREDICTED, [TARGET] * 4, extra={"run": "x"}
    )
    with (tmp_path / "scores" / SLICES_FILENAME).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["case_id"], int(row["z"])) for row in rows] == [("a", 3), ("a", 4), ("b", 0), ("b", 7)]
    assert float(rows[2]["recall"]) == pytest.approx(0.5) and float(rows[2]["iou"]) == pytest.approx(1 / 3)
    assert float(rows[1]["box_top"]) == 5.0 and float(rows[1]["target_right"]) == 20.0
    record = json.loads((tmp_path / "scores" / SUMMARY_FILENAME).read_text())
    assert record["extra"] == {"run": "x"}
    assert read_detection_summary(tmp_path / "scores") == summary
    with pytest.raises(ValueError, match="differ in length"):
        write_detection_scores(tmp_path / "bad", ["a"], [1, 2], PREDICTED[:1], [TARGET])


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_written(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    boxes = [Box(9.0, 9.0, 23.0, 23.0), Box(9.0, 9.0, 19.5, 19.5), Box(11.6, 9.0, 22.1, 19.5)]
    plot_episode(image, boxes, [0, 7], Box(12.0, 10.0, 20.0, 18.0), tmp_path / "episode.png")
    assert _is_png(tmp_path / "episode.png")
    with pytest.raises(ValueError, match="needs 3 boxes"):
        plot_episode(image[0], boxes[:2], [0, 7], None, tmp_path / "bad.png")
    logs = {}
    for name, shift in (("eps_priori_0.8", 0.0), ("eps_greedy", 0.5)):
        log = tmp_path / name / "log.csv"
        log.parent.mkdir()
        rows = ["epoch,loss,val_recall_mean"] + [f"{e},{1.0 / (e + 1) + shift},{0.5 + 0.1 * e}" for e in range(3)]
        log.write_text("\n".join(rows) + "\n")
        logs[name] = log
    plot_convergence(logs, tmp_path / "convergence.png")
    assert _is_png(tmp_path / "convergence.png")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_write_slice_scores_takes_ids_and_targets_from_the_slices(tmp_path: Path) -> None:
    from npcseg.detection.environment import DetectionSlice

    image = np.zeros((1, 40, 40), dtype=np.float32)
    slices = [DetectionSlice(image, TARGET, "a", 3), DetectionSlice(image, TARGET, "b", 7)]
    summary = write_slice_scores(tmp_path, slices, [PREDICTED[2], None])
    assert summary.recall_mean == pytest.approx(0.25)  # 0.5 and a miss
    with (tmp_path / SLICES_FILENAME).open(newline="") as handle:
        assert [(row["case_id"], row["z"]) for row in csv.DictReader(handle)] == [("a", "3"), ("b", "7")]
    with pytest.raises(ValueError, match="no target box"):
        write_slice_scores(tmp_path, [DetectionSlice(image, None, "c", 0)], [None])
