"""The heat-map detector: the box of a segmentation run's thresholded probability map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from detection_tiny_cache import SEQUENCES, train_tiny_segmentation_run, write_tiny_detection_cache
from torch import nn

import npcseg.detection.heatmap as heatmap
from npcseg.detection.environment import detection_slices
from npcseg.detection.heatmap import HeatmapDetector, run_heatmap_baseline
from npcseg.detection.scores import SLICES_FILENAME, SUMMARY_FILENAME
from npcseg.inference.runs import SliceSegmenter, read_run


class BrightPixels(nn.Module):
    """Logit 40 * (channel 0 - 0.5): the tiny cache's tumour squares (0.9) are certain, the background (~0.1) not."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 40.0 * (images[:, :1] - 0.5)


class Nothing(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full_like(images[:, :1], -10.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("heatmap")
    write_tiny_detection_cache(root / "cache", num_cases=3)
    return root / "cache", train_tiny_segmentation_run(root / "cache", root / "run", ["case000", "case001"])


def _with_network(monkeypatch: pytest.MonkeyPatch, network: nn.Module) -> None:
    def load(run_dir: Path) -> tuple[SliceSegmenter, object]:
        run, _ = read_run(run_dir)
        return SliceSegmenter(network, run.sequences), run

    monkeypatch.setattr(heatmap, "load_slice_segmenter", load)


def test_a_perfect_map_gives_the_target_boxes_exactly(setup, monkeypatch, tmp_path: Path) -> None:
    cache, run = setup
    _with_network(monkeypatch, BrightPixels())
    summary = run_heatmap_baseline(cache, run, ["case002"], tmp_path / "out")
    assert summary.num_slices == 2
    assert summary.recall_min == summary.iou_min == 1.0  # box of the thresholded square == the label's box
    record = json.loads((tmp_path / "out" / SUMMARY_FILENAME).read_text())
    assert record["extra"]["threshold"] == 0.5 and record["extra"]["num_misses"] == 0


def test_an_empty_map_is_a_miss_on_every_slice(setup, monkeypatch, tmp_path: Path) -> None:
    cache, run = setup
    _with_network(monkeypatch, Nothing())
    summary = run_heatmap_baseline(cache, run, ["case002"], tmp_path / "out", threshold=0.2)
    assert summary.recall_max == summary.iou_max == summary.enlarged_recall_mean == 0.0
    assert json.loads((tmp_path / "out" / SUMMARY_FILENAME).read_text())["extra"]["num_misses"] == 2
    assert (tmp_path / "out" / SLICES_FILENAME).read_text().count(",,,,") == 2  # no box: empty box columns


def test_the_real_run_detects_with_its_own_channels_and_threshold(setup) -> None:
    cache, run = setup
    detector = HeatmapDetector(run)
    assert detector.sequences == SEQUENCES and detector.threshold == 0.5
    slices = detection_slices(cache, ["case002"], detector.sequences)
    probabilities = detector.probabilities(slices)
    assert probabilities.shape == (2, 32, 32) and probabilities.min() >= 0 and probabilities.max() <= 1
    assert len(detector.detect_slices(slices)) == 2


def test_bad_settings_and_other_caches_are_refused(setup, tmp_path: Path) -> None:
    cache, run = setup
    with pytest.raises(ValueError, match="threshold"):
        HeatmapDetector(run, threshold=1.0)
    write_tiny_detection_cache(tmp_path / "other", num_cases=1, size=64)
    with pytest.raises(ValueError, match="preprocessing differs"):
        run_heatmap_baseline(tmp_path / "other", run, ["case000"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="no case ids"):
        run_heatmap_baseline(cache, run, [], tmp_path / "out")
