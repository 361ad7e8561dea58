"""Scoring a folder of predicted masks against a labelled cohort (``npcseg evaluate``).

Inputs:

* ``PREDICTIONS/<case_id>.<ext>``: one binary mask per case (any ending of
  :data:`npcseg.io.images.IMAGE_SUFFIXES`; non-zero = tumour). Probability maps ``<case_id>_probability.<ext>``
  (what ``npcseg predict --probability`` writes beside the masks) and hidden files are ignored.
* ``COHORT/cases/<case_id>/label.<ext>``: the references (:mod:`npcseg.io.cohort`); cases without a label take
  no part.

Matching is by case id. A prediction without a labelled case is an error; a labelled case without a prediction is
an error unless ``allow_missing`` (then it is listed in the summary and left out of every statistic). Each
prediction must lie on its label's grid: size, spacing, origin and direction equal within
:meth:`npcseg.io.volume.Grid.mismatch`'s tolerances (1e-3 mm, 1e-5 for direction cosines); all mismatches are
reported at once, naming the case and the field, before any metric is computed.

Outputs (written atomically, and only when every case was scored, so an error leaves no partial output):

* ``OUT/metrics.csv``: one row per case, ``case_id`` then every
  :class:`~npcseg.evaluation.metrics.SegmentationMetrics` field (the columns of a cross-validation's
  ``metrics.csv``, less ``fold``), then ``volume_difference_ml`` (prediction - reference) and
  ``relative_volume_difference_percent`` (``100 (V_P - V_R) / V_R``; nan for an empty reference).
* ``OUT/summary.json``: :func:`~npcseg.evaluation.scoring.summarize_metrics` (mean, sample sd, median, min, max
  per metric), the aggregated Dice ``dsc_agg`` beside the mean per-case Dice, the voxel counts behind it, the
  inputs, missing cases and package versions.

Aggregated Dice (HNTS-MRG 2024 challenge, "DSCagg"): ``2 sum_i |P_i & R_i| / (sum_i |P_i| + sum_i |R_i|)`` over the
voxels of all cases, so large tumours weigh more and a case with an empty reference does not count as a 0 or a
1. Counts are voxels (not ml), as the challenge computes it; when every mask is empty the value is 1.0, the
overlap metrics' ``empty_value``.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from npcseg.evaluation.metrics import compute_metrics
from npcseg.evaluation.scoring import json_safe, metrics_csv, summarize_metrics
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import discover_cases
from npcseg.io.images import image_stem, read_image
from npcseg.io.volume import Grid

logger = logging.getLogger(__name__)

METRICS_FILENAME = "metrics.csv"
SUMMARY_FILENAME = "summary.json"
PROBABILITY_SUFFIX = "_probability"
"""Stem ending of probability maps written beside the masks; such files are not predictions."""


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of one case, the terms of the aggregated Dice.

    Attributes:
        true_positive: voxels in both the prediction and the reference.
        prediction: voxels in the prediction.
        reference: voxels in the reference.
    """

    true_positive: int
    prediction: int
    reference: int


@dataclass(frozen=True)
class CaseMatching:
    """Predictions paired with labelled cases by case id.

    Attributes:
        pairs: case id -> (prediction file, label file), sorted by case id.
        unmatched_predictions: case id -> prediction file without a labelled case of that id.
        missing_predictions: ids of labelled cases without a prediction, sorted.
    """

    pairs: dict[str, tuple[Path, Path]]
    unmatched_predictions: dict[str, Path]
    missing_predictions: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate_predictions` computed and wrote.

    Attributes:
        out: the output folder (``metrics.csv``, ``summary.json``).
        metrics: one record per scored case, as in ``metrics.csv`` (sorted by case id).
        summary: the content of ``summary.json`` (nan where the file has ``null``).
        dsc_agg: the aggregated Dice over all scored cases.
        missing_predictions: labelled cases without a prediction (only non-empty with ``allow_missing``).
    """

    out: Path
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]
    dsc_agg: float
    missing_predictions: tuple[str, ...]


def find_predictions(folder: Path) -> dict[str, Path]:
    """Case id -> mask file of a predictions folder (probability maps and hidden files skipped), sorted by id.

    Raises:
        FileNotFoundError: when ``folder`` is not a folder.
        ValueError: when one case has two mask files (e.g. ``a.nii`` and ``a.nii.gz``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: predictions folder not found")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = image_stem(path)
        if stem is None or path.name.startswith(".") or stem.endswith(PROBABILITY_SUFFIX) or not path.is_file():
            continue
        if stem in found:
            raise ValueError(f"{folder}: case {stem!r} has two prediction files, {found[stem].name} and {path.name}")
        found[stem] = path
    return dict(sorted(found.items()))


def match_cases(predictions: dict[str, Path], reference: Path) -> CaseMatching:
    """Pair predictions with the labelled cases of the cohort ``reference`` by case id."""
    labels = {case.case_id: case.label for case in discover_cases(reference) if case.label is not None}
    pairs = {case_id: (path, labels[case_id]) for case_id, path in predictions.items() if case_id in labels}
    return CaseMatching(
        pairs=dict(sorted(pairs.items())),
        unmatched_predictions={case_id: path for case_id, path in predictions.items() if case_id not in labels},
        missing_predictions=tuple(sorted(case_id for case_id in labels if case_id not in predictions)),
    )


def aggregated_dice(counts: Iterable[OverlapCounts], *, empty_value: float = 1.0) -> float:
    """DSCagg ``2 sum TP / (sum |P| + sum |R|)`` over cases (see the module docstring); ``empty_value`` if 0/0."""
    counts = list(counts)
    true_positive = sum(count.true_positive for count in counts)
    denominator = sum(count.prediction + count.reference for count in counts)
    return 2.0 * true_positive / denominator if denominator else empty_value


def header_grid(path: Path) -> Grid:
    """The grid of an image file from its header alone (no voxel data read).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when it cannot be read or is not 3D.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        reason = (str(error).strip().splitlines() or ["unknown reader error"])[-1]
        raise ValueError(f"{path}: unreadable image header ({reason})") from error
    if reader.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3D image, got {reader.GetDimension()}D of size {reader.GetSize()}")
    return Grid(
        size_xyz=tuple(int(value) for value in reader.GetSize()),  # type: ignore[arg-type]
        spacing_xyz=tuple(float(value) for value in reader.GetSpacing()),  # type: ignore[arg-type]
        origin_xyz=tuple(float(value) for value in reader.GetOrigin()),  # type: ignore[arg-type]
        direction=tuple(float(value) for value in reader.GetDirection()),
    )


def check_geometry(pairs: dict[str, tuple[Path, Path]]) -> None:
    """Raise ``ValueError`` listing every case whose prediction does not lie on its label's grid."""
    problems = []
    for case_id, (prediction, label) in pairs.items():
        mismatch = header_grid(prediction).mismatch(header_grid(label))
        if mismatch is not None:
            problems.append(f"case {case_id!r}: prediction {prediction} vs reference {label}: {mismatch}")
    if len(problems) == 1:
        raise ValueError(f"geometry mismatch: {problems[0]}")
    if problems:
        listing = "\n".join(f"  {problem}" for problem in problems)
        raise ValueError(f"geometry mismatch in {len(problems)} cases:\n{listing}")


def score_case(
    case_id: str, prediction_path: Path, label_path: Path, *, tolerance_mm: float = 2.0
) -> tuple[dict[str, Any], OverlapCounts]:
    """The ``metrics.csv`` record and the voxel counts of one case.

    Raises:
        ValueError: when the files do not lie on the same grid, or the prediction holds non-integer values (a
            probability map rather than a mask).
    """
    prediction_image = read_image(prediction_path)
    label_image = read_image(label_path)
    grid = Grid.from_image(label_image)
    mismatch = Grid.from_image(prediction_image).mismatch(grid)
    if mismatch is not None:
        raise ValueError(
            f"geometry mismatch: case {case_id!r}: prediction {prediction_path} vs {label_path}: {mismatch}"
        )
    prediction = sitk.GetArrayViewFromImage(prediction_image)
    if np.issubdtype(prediction.dtype, np.floating) and not np.array_equal(prediction, np.round(prediction)):
        raise ValueError(
            f"case {case_id!r}: {prediction_path} holds non-integer values (a probability map?); give binary masks"
        )
    prediction_mask = prediction != 0
    reference_mask = sitk.GetArrayViewFromImage(label_image) != 0
    metrics = compute_metrics(prediction_mask, reference_mask, grid.spacing_zyx, tolerance_mm=tolerance_mm)
    record: dict[str, Any] = {"case_id": case_id, **metrics.to_dict()}
    difference = metrics.volume_prediction_ml - metrics.volume_reference_ml
    record["volume_difference_ml"] = difference
    reference_ml = metrics.volume_reference_ml
    record["relative_volume_difference_percent"] = 100.0 * difference / reference_ml if reference_ml else math.nan
    counts = OverlapCounts(
        true_positive=int(np.count_nonzero(prediction_mask & reference_mask)),
        prediction=int(np.count_nonzero(prediction_mask)),
        reference=int(np.count_nonzero(reference_mask)),
    )
    return record, counts


def versions() -> dict[str, str]:
    """Versions of the packages the scores depend on."""
    import scipy

    import npcseg

    return {
        "npcseg": npcseg.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "python": platform.python_version(),
    }


def evaluate_predictions(
    predictions: Path,
    reference: Path,
    out: Path,
    *,
    tolerance_mm: float = 2.0,
    allow_missing: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Score every prediction of a folder against the labelled cohort and write the tables (module docstring).

    Args:
        predictions: folder of ``<case_id>.nii.gz`` masks.
        reference: the labelled cohort folder (``COHORT/cases/<case_id>/label.nii.gz``).
        out: output folder for ``metrics.csv`` and ``summary.json`` (created when everything was scored).
        tolerance_mm: the surface-Dice tolerance in mm.
        allow_missing: list labelled cases without a prediction instead of refusing them.
        progress: show a progress bar.

    Raises:
        FileNotFoundError: when a folder or file does not exist.
        ValueError: on predictions without a labelled case, missing predictions (unless ``allow_missing``), no
            case to score, a geometry mismatch or a non-binary prediction; nothing is written then.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    predictions, reference, out = Path(predictions), Path(reference), Path(out)
    if not (tolerance_mm >= 0 and math.isfinite(tolerance_mm)):
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm}")
    start = time.perf_counter()
    matching = match_cases(find_predictions(predictions), reference)
    if matching.unmatched_predictions:
        names = ", ".join(path.name for path in matching.unmatched_predictions.values())
        raise ValueError(
            f"{predictions}: {len(matching.unmatched_predictions)} prediction(s) without a labelled case in "
            f"{reference}: {names}"
        )
    if matching.missing_predictions and not allow_missing:
        raise ValueError(
            f"{predictions}: no prediction for {len(matching.missing_predictions)} labelled case(s) of {reference}: "
            f"{', '.join(matching.missing_predictions)} (use --allow-missing to score the others)"
        )
    if not matching.pairs:
        raise ValueError(f"{predictions}: no prediction matches a labelled case of {reference}")
    if matching.missing_predictions:
        logger.warning(
            "%d labelled case(s) without a prediction: %s",
            len(matching.missing_predictions),
            ", ".join(matching.missing_predictions),
        )
    check_geometry(matching.pairs)

    rows: list[dict[str, Any]] = []
    counts: list[OverlapCounts] = []
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("cases", total=len(matching.pairs))
        for case_id, (prediction_path, label_path) in matching.pairs.items():
            record, case_counts = score_case(case_id, prediction_path, label_path, tolerance_mm=tolerance_mm)
            rows.append(record)
            counts.append(case_counts)
            bar.advance(task)

    dsc_agg = aggregated_dice(counts)
    summary: dict[str, Any] = summarize_metrics(rows)
    summary.update(
        dsc_agg=dsc_agg,
        dice_mean=summary["metrics"]["dice"]["mean"],
        aggregate_counts={
            "true_positive_voxels": sum(count.true_positive for count in counts),
            "prediction_voxels": sum(count.prediction for count in counts),
            "reference_voxels": sum(count.reference for count in counts),
        },
        num_missing=len(matching.missing_predictions),
        missing_predictions=list(matching.missing_predictions),
        inputs={"predictions": str(predictions), "reference": str(reference), "tolerance_mm": float(tolerance_mm)},
        versions=versions(),
        seconds=round(time.perf_counter() - start, 3),
    )
    atomic_write_text(out / METRICS_FILENAME, metrics_csv(rows))
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(json_safe(summary), indent=1) + "\n")
    return EvaluationResult(
        out=out, metrics=rows, summary=summary, dsc_agg=dsc_agg, missing_predictions=matching.missing_predictions
    )
