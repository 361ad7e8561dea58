"""Detection scores of final boxes: per-slice recall and IoU, and the summary of the paper's Tables 1-2.

Recall is the fraction of the target box's area inside the predicted box (:func:`npcseg.detection.boxes.recall`),
IoU the intersection over union; both in [0, 1]. The summary gives min / max / mean of each over the scored slices,
their number, the fraction of slices with recall >= 0.95 (the paper's success threshold ``tau_recall``), and the
recall of the box enlarged 1.5 times about its centre (:data:`ENLARGED_SCALE`: the crop the cascade segments, so the
tumour the segmenter can see). A detector may find no box on a slice (``None``, e.g. a heat-map detector whose map is
empty there): such a miss scores recall and IoU 0.
Every slice scored has a target box: slices without tumour have no detection score (the tumour-present decision of
the cascade is scored elsewhere).

Files written by :func:`write_detection_scores` (atomically): ``detection_slices.csv`` (one row per slice: case id,
slice index, predicted and target box, recall, IoU) and ``detection_summary.json`` (the summary plus any extras).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from npcseg.detection.boxes import Box, iou, recall
from npcseg.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from npcseg.detection.environment import DetectionSlice

SLICES_FILENAME = "detection_slices.csv"
SUMMARY_FILENAME = "detection_summary.json"
SLICE_COLUMNS = (
    "case_id",
    "z",
    "box_top",
    "box_left",
    "box_bottom",
    "box_right",
    "target_top",
    "target_left",
    "target_bottom",
    "target_right",
    "recall",
    "iou",
)
RECALL_SUCCESS = 0.95
"""Recall from which a slice counts as detected in :attr:`DetectionSummary.fraction_recall_095`."""
ENLARGED_SCALE = 1.5
"""The cascade enlarges the detected box this many times before cropping (METHODS.md, "Cascade")."""


@dataclass(frozen=True)
class DetectionSummary:
    """Tables 1-2 of the paper over a set of slices (fractions in [0, 1]; ``nan`` when no slice was scored)."""

    num_slices: int
    recall_min: float
    recall_max: float
    recall_mean: float
    iou_min: float
    iou_max: float
    iou_mean: float
    fraction_recall_095: float
    """Fraction of slices whose recall is at least 0.95."""
    enlarged_recall_min: float = math.nan
    """Minimum recall of the boxes enlarged :data:`ENLARGED_SCALE` times (nan in summaries written before it)."""
    enlarged_recall_mean: float = math.nan
    """Mean recall of the enlarged boxes."""

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for JSON and tables)."""
        return asdict(self)


def slice_scores(predicted: Sequence[Box | None], targets: Sequence[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, IoU and enlarged-box recall of each predicted box against its target, as three float64 arrays of the
    same length (a ``None`` box, no detection, scores 0 in all three).

    Raises:
        ValueError: when the two sequences differ in length.
    """
    if len(predicted) != len(targets):
        raise ValueError(f"got {len(predicted)} predicted boxes but {len(targets)} targets")
    pairs = list(zip(predicted, targets, strict=True))
    recalls = np.asarray([0.0 if box is None else recall(box, target) for box, target in pairs], float)
    ious = np.asarray([0.0 if box is None else iou(box, target) for box, target in pairs], float)
    enlarged = [0.0 if box is None else recall(box.scaled(ENLARGED_SCALE), target) for box, target in pairs]
    return recalls, ious, np.asarray(enlarged, float)


def summarise(
    recalls: Sequence[float] | np.ndarray,
    ious: Sequence[float] | np.ndarray,
    enlarged_recalls: Sequence[float] | np.ndarray | None = None,
) -> DetectionSummary:
    """The :class:`DetectionSummary` of per-slice recalls and IoUs (same length), and of the enlarged boxes'
    recalls when given (else those fields are nan)."""
    recall_array, iou_array = np.asarray(recalls, float), np.asarray(ious, float)
    enlarged = np.full(recall_array.shape, np.nan) if enlarged_recalls is None else np.asarray(enlarged_recalls, float)
    if not recall_array.shape == iou_array.shape == enlarged.shape:
        raise ValueError(f"got {recall_array.size} recalls, {iou_array.size} IoUs, {enlarged.size} enlarged recalls")
    if recall_array.size == 0:
        return DetectionSummary(0, *([math.nan] * 9))
    return DetectionSummary(
        num_slices=int(recall_array.size),
        recall_min=float(recall_array.min()),
        recall_max=float(recall_array.max()),
        recall_mean=float(recall_array.mean()),
        iou_min=float(iou_array.min()),
        iou_max=float(iou_array.max()),
        iou_mean=float(iou_array.mean()),
        fraction_recall_095=float(np.mean(recall_array >= RECALL_SUCCESS - 1e-12)),
        enlarged_recall_min=float(enlarged.min()),
        enlarged_recall_mean=float(enlarged.mean()),
    )


def score_boxes(predicted: Sequence[Box | None], targets: Sequence[Box]) -> DetectionSummary:
    """Summary of predicted boxes (``None``: no detection) against their target boxes (pairs in the same order)."""
    return summarise(*slice_scores(predicted, targets))


def write_detection_scores(
    out: Path,
    case_ids: Sequence[str],
    z_indices: Sequence[int],
    predicted: Sequence[Box | None],
    targets: Sequence[Box],
    *,
    extra: Mapping[str, Any] | None = None,
) -> DetectionSummary:
    """Write ``out/detection_slices.csv`` and ``out/detection_summary.json``; returns the summary.

    Args:
        out: output folder (created).
        case_ids: case id of each slice.
        z_indices: slice index of each slice in its case's cache volume.
        predicted: the final box of each slice (``None``: no detection; its box columns are empty).
        targets: the ground-truth box of each slice.
        extra: more JSON-able facts stored in the summary file under ``"extra"`` (e.g. the run folder).

    Raises:
        ValueError: when the sequences differ in length.
    """
    if not len(case_ids) == len(z_indices) == len(predicted) == len(targets):
        raise ValueError(
            f"case_ids, z_indices, predicted and targets differ in length: "
            f"{len(case_ids)}, {len(z_indices)}, {len(predicted)}, {len(targets)}"
        )
    recalls, ious, enlarged = slice_scores(predicted, targets)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SLICE_COLUMNS)
    for case_id, z, box, target, box_recall, box_iou in zip(
        case_ids, z_indices, predicted, targets, recalls, ious, strict=True
    ):
        edges = ("",) * 4 if box is None else tuple(f"{value:.3f}" for value in box.as_tuple())
        coordinates = [*edges, *(f"{value:.3f}" for value in target.as_tuple())]
        writer.writerow([case_id, int(z), *coordinates, f"{box_recall:.6f}", f"{box_iou:.6f}"])
    out = Path(out)
    atomic_write_text(out / SLICES_FILENAME, buffer.getvalue())
    summary = summarise(recalls, ious, enlarged)
    record: dict[str, Any] = {"summary": summary.to_dict()}
    if extra:
        record["extra"] = dict(extra)
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(record, indent=1, allow_nan=True) + "\n")
    return summary


def write_slice_scores(
    out: Path,
    slices: Sequence[DetectionSlice],
    predicted: Sequence[Box | None],
    *,
    extra: Mapping[str, Any] | None = None,
) -> DetectionSummary:
    """:func:`write_detection_scores` of one box per tumour slice (case ids, slice indices and targets from the
    slices).

    Raises:
        ValueError: a slice has no target, or the lengths differ.
    """
    untargeted = [(item.case_id, item.z) for item in slices if item.target is None]
    if untargeted:
        raise ValueError(f"slice(s) {untargeted[:5]} have no target box to score against")
    targets = [item.target for item in slices if item.target is not None]
    case_ids, z_indices = [item.case_id for item in slices], [item.z for item in slices]
    return write_detection_scores(out, case_ids, z_indices, predicted, targets, extra=extra)


def read_detection_summary(out: Path) -> DetectionSummary:
    """The summary stored by :func:`write_detection_scores` in ``out``."""
    path = Path(out) / SUMMARY_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no detection summary here")
    return DetectionSummary(**json.loads(path.read_text())["summary"])


TABLE_COLUMNS = (
    ("num_slices", "slices"),
    ("recall_min", "recall min"),
    ("recall_max", "recall max"),
    ("recall_mean", "recall mean"),
    ("iou_min", "IoU min"),
    ("iou_max", "IoU max"),
    ("iou_mean", "IoU mean"),
    ("fraction_recall_095", "recall >= 0.95"),
    ("enlarged_recall_min", "x1.5 box recall min"),
    ("enlarged_recall_mean", "x1.5 box recall mean"),
)
"""Columns of the detection table: (summary field, heading)."""


def detection_table_markdown(rows: Mapping[str, DetectionSummary]) -> str:
    """A markdown table of Tables 1-2: one row per setting / method, fractions in percent with one decimal."""
    lines = ["| setting | " + " | ".join(heading for _, heading in TABLE_COLUMNS) + " |"]
    lines.append("|---|" + "---:|" * len(TABLE_COLUMNS))
    for name, summary in rows.items():
        cells = [str(summary.num_slices)]
        cells += [f"{100 * getattr(summary, field):.1f} %" for field, _ in TABLE_COLUMNS[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_detection_table(stem: Path, rows: Mapping[str, DetectionSummary], *, caption: str = "") -> None:
    """Write ``stem.csv`` (fractions as numbers) and ``stem.md`` (percentages, after ``caption``) atomically."""
    stem = Path(stem)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["setting", *(field for field, _ in TABLE_COLUMNS)])
    for name, summary in rows.items():
        writer.writerow(
            [name, summary.num_slices, *(f"{getattr(summary, field):.6f}" for field, _ in TABLE_COLUMNS[1:])]
        )
    atomic_write_text(stem.with_suffix(".csv"), buffer.getvalue())
    text = (caption.strip() + "\n\n" if caption.strip() else "") + detection_table_markdown(rows)
    atomic_write_text(stem.with_suffix(".md"), text)
