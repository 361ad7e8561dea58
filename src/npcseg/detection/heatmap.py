"""Heat-map detector: the supervised baseline that boxes a segmentation network's tumour probability map.

The issue's second baseline kind beside the box regressor (Faster R-CNN needs torchvision). A trained segmentation
run (e.g. RANet + DBW on whole slices) gives each slice a probability map; the detection is the box around every
pixel at or above ``threshold`` (all components together, the same policy as the ground-truth box), or no box when
no pixel reaches it (scored as a miss: recall and IoU 0). Lower thresholds trade IoU for recall.

The run must have been trained on the same preprocessed cache settings as the slices it detects on (checked), and
only on training cases of the split it is scored on (the caller's duty; the ablation passes the fold's run).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npcseg.detection.boxes import Box, box_of_mask
from npcseg.detection.environment import DetectionSlice, detection_slices
from npcseg.detection.scores import DetectionSummary, write_slice_scores
from npcseg.inference.runs import load_slice_segmenter
from npcseg.preprocessing.cache import load_cache_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeatmapDetection:
    """One slice's detection (the cascade reads ``box``)."""

    box: Box


class HeatmapDetector:
    """Boxes around a segmentation run's thresholded probability maps.

    Args:
        run_dir: a training run folder (``npcseg train`` / one fold of ``npcseg cv``).
        threshold: probability at or above which a pixel counts; ``None`` takes the run's own threshold.

    Attributes:
        sequences: the network's input sequences, in channel order (slices must come in this order).
    """

    def __init__(self, run_dir: Path, threshold: float | None = None) -> None:
        self.segmenter, self.run = load_slice_segmenter(Path(run_dir))
        self.threshold = self.run.threshold if threshold is None else float(threshold)
        if not 0 < self.threshold < 1:
            raise ValueError(f"the heat-map threshold must lie in (0, 1), got {self.threshold}")
        self.sequences = self.run.sequences

    def check_cache(self, cache: Path) -> None:
        """Refuse a cache preprocessed differently from the one the run was trained on."""
        if load_cache_config(cache) != self.run.preprocessing:
            raise ValueError(
                f"{cache}: its preprocessing differs from the one {self.run.run_dir} was trained on; the heat-map "
                "detector needs slices prepared the same way"
            )

    def probabilities(self, slices: Sequence[DetectionSlice]) -> np.ndarray:
        """``(N, H, W)`` float32 tumour probabilities of the slices (channels in :attr:`sequences` order)."""
        if not slices:
            return np.zeros((0, 0, 0), dtype=np.float32)
        return self.segmenter.probabilities(np.stack([item.image for item in slices]))

    def detect(self, image: np.ndarray) -> HeatmapDetection | None:
        """The detection on one slice ``(C, H, W)`` (channels in :attr:`sequences` order), ``None`` if the map is
        empty (the cascade's detector interface)."""
        probability = self.segmenter.probabilities(np.asarray(image, dtype=np.float32)[None])[0]
        box = box_of_mask(probability >= self.threshold)
        return None if box is None else HeatmapDetection(box)

    def detect_slices(self, slices: Sequence[DetectionSlice]) -> list[Box | None]:
        """The box of each slice's thresholded map, ``None`` where no pixel reaches the threshold."""
        return [box_of_mask(probability >= self.threshold) for probability in self.probabilities(slices)]


def run_heatmap_baseline(
    cache: Path, run_dir: Path, test_ids: Sequence[str], out: Path, *, threshold: float | None = None
) -> DetectionSummary:
    """Score the heat-map detector of ``run_dir`` on every tumour slice of ``test_ids``; scores written to ``out``.

    Raises:
        ValueError: no test ids, no tumour slice, a case without label, or a cache prepared differently.
        FileNotFoundError: the run, the cache or a case is missing.
    """
    if not test_ids:
        raise ValueError("no case ids to score the heat-map detector on")
    detector = HeatmapDetector(run_dir, threshold)
    detector.check_cache(cache)
    slices = detection_slices(cache, test_ids, detector.sequences)
    if not slices:
        raise ValueError(f"{cache}: the cases {list(test_ids)} have no tumour slice to score")
    boxes = detector.detect_slices(slices)
    misses = sum(box is None for box in boxes)
    logger.info(
        "heat-map detector (threshold %.2f): %d of %d slice(s) without a box", detector.threshold, misses, len(boxes)
    )
    return write_slice_scores(
        out,
        slices,
        boxes,
        extra={
            "run": str(Path(run_dir)),
            "threshold": detector.threshold,
            "cache": str(cache),
            "case_ids": list(test_ids),
            "num_misses": misses,
        },
    )
