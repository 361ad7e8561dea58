"""Scoring saved masks against label files, and the per-case table / summary an experiment folder keeps.

A prediction file and its label must lie on the same grid (the label's: for DEU the original T2 grid); the
metrics (:func:`npcseg.evaluation.metrics.compute_metrics`) use the label's spacing in array order ``(z, y, x)``.
The summary aggregates every measured field over cases with :func:`~npcseg.evaluation.metrics.aggregate` (mean,
sample sd, median, min, max of the finite values; ``num_excluded`` counts nan / inf, e.g. a distance of an empty
mask).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from npcseg.evaluation.metrics import aggregate, compute_metrics
from npcseg.io.images import read_image
from npcseg.io.volume import Grid

IDENTIFIER_COLUMNS = ("case_id", "fold")
"""Columns of a per-case record that identify the case rather than measure it."""
SETTING_FIELDS = ("tolerance_mm",)
"""Metric fields that are settings, not measurements; left out of the summary."""


def score_prediction(prediction_path: Path, label_path: Path, *, tolerance_mm: float = 2.0) -> dict[str, float]:
    """Every :class:`~npcseg.evaluation.metrics.SegmentationMetrics` field of a saved mask against a label file.

    Raises:
        ValueError: the two files do not lie on the same grid (the message names both and the difference).
    """
    label = read_image(label_path)
    prediction = read_image(prediction_path)
    mismatch = Grid.from_image(prediction).mismatch(Grid.from_image(label))
    if mismatch is not None:
        raise ValueError(f"{prediction_path}: does not lie on the grid of {label_path} ({mismatch})")
    metrics = compute_metrics(
        sitk.GetArrayViewFromImage(prediction),
        sitk.GetArrayViewFromImage(label),
        Grid.from_image(label).spacing_zyx,
        tolerance_mm=tolerance_mm,
    )
    return metrics.to_dict()


def summarize_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"num_cases", "metrics": {name: aggregate}, "per_fold_mean": {fold: {name: mean}}}`` of per-case records.

    Records with a ``fold`` column also get per-fold means (``per_fold_mean`` is empty otherwise).
    """
    names = [key for key in (rows[0] if rows else {}) if key not in (*IDENTIFIER_COLUMNS, *SETTING_FIELDS)]
    per_fold: dict[str, dict[str, float]] = {}
    for fold in sorted({row["fold"] for row in rows if "fold" in row}):
        members = [row for row in rows if row.get("fold") == fold]
        per_fold[str(fold)] = {name: aggregate(row[name] for row in members)["mean"] for name in names}
    return {
        "num_cases": len(rows),
        "metrics": {name: aggregate(row[name] for row in rows) for name in names},
        "per_fold_mean": per_fold,
    }


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    """Per-case records as CSV text (columns of the first record; empty text for no records)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def json_safe(value: Any) -> Any:
    """A copy of nested dicts / lists with non-finite floats as ``None`` (JSON has no nan / inf)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_table_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows ``(metric, mean ± sd, median (min-max), values / excluded)`` of a summary, for printing.

    Accepts the in-memory summary (nan) and one read back from JSON (``None``).
    """

    def number(value: float | None) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"

    return [
        (
            name,
            f"{number(stats['mean'])} ± {number(stats['sd'])}",
            f"{number(stats['median'])} ({number(stats['min'])}-{number(stats['max'])})",
            f"{stats['num_values']} / {stats['num_excluded']}",
        )
        for name, stats in summary["metrics"].items()
    ]
