"""Scoring a trained detector on the tumour slices of some cases: per-slice boxes and scores, episode figures.

Output folder ``OUT`` (every file written atomically)::

    detection_slices.csv      one row per tumour slice: case id, slice index, final box, target box, recall, IoU
    detection_summary.json    the Tables 1-2 summary, plus the run folder, cache, case ids, steps taken
    figures/<case>_z<z>.png   episode figures of ``num_figures`` slices spread evenly over the scored ones
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npcseg.detection.environment import detection_slices
from npcseg.detection.figures import plot_episode
from npcseg.detection.inference import load_detector
from npcseg.detection.scores import DetectionSummary, write_slice_scores

logger = logging.getLogger(__name__)

FIGURES_DIRNAME = "figures"


def figure_indices(num_slices: int, num_figures: int) -> list[int]:
    """``num_figures`` slice indices spread evenly over ``0 .. num_slices - 1`` (all of them when fewer)."""
    if num_figures <= 0 or num_slices <= 0:
        return []
    if num_figures >= num_slices:
        return list(range(num_slices))
    return sorted({round(float(value)) for value in np.linspace(0, num_slices - 1, num_figures)})


def evaluate_detector(
    run_dir: Path, cache: Path, case_ids: Sequence[str], out: Path, *, num_figures: int = 0
) -> DetectionSummary:
    """Detect on every tumour slice of ``case_ids`` with the run's detector and write the scores to ``out``.

    Args:
        run_dir: a finished detector run folder.
        cache: the preprocessed cache holding the cases (labelled).
        case_ids: the cases scored.
        out: output folder (see the module docstring).
        num_figures: episode figures drawn (0: none).

    Raises:
        FileNotFoundError: the run is not finished, or the cache / a case is missing.
        ValueError: no case ids, a case without label, or no tumour slice.
    """
    if not case_ids:
        raise ValueError("no case ids to evaluate the detector on")
    detector = load_detector(run_dir)
    slices = detection_slices(cache, case_ids, detector.sequences)
    if not slices:
        raise ValueError(f"{cache}: the cases {list(case_ids)} have no tumour slice to score")
    results = detector.detect_slices(slices)
    steps = [len(result.actions) for result in results]
    summary = write_slice_scores(
        out,
        slices,
        [result.box for result in results],
        extra={
            "run": str(run_dir),
            "cache": str(cache),
            "case_ids": list(case_ids),
            "mean_steps": float(np.mean(steps)),
            "fraction_terminated": float(np.mean([result.terminated for result in results])),
        },
    )
    channel = detector.sequences.index("t2") if "t2" in detector.sequences else 0
    for index in figure_indices(len(slices), num_figures):
        item, result = slices[index], results[index]
        plot_episode(
            item.image,
            result.boxes,
            result.actions,
            item.target,
            Path(out) / FIGURES_DIRNAME / f"{item.case_id}_z{item.z:03d}.png",
            channel=channel,
            title=f"{item.case_id} slice {item.z}: {len(result.actions)} step(s)",
        )
    logger.info(
        "%d slice(s): recall mean %.3f (min %.3f), IoU mean %.3f",
        summary.num_slices,
        summary.recall_mean,
        summary.recall_min,
        summary.iou_mean,
    )
    return summary
