"""Prediction of cached cases with trained runs, their scoring, and the evaluation of an external cohort.

:func:`predict_cached` writes masks on the original T2 grids (used for a fold's held-out cases and for an external
cohort); :func:`evaluate_external` predicts an external cohort with the ensemble of a cross-validation's folds and
scores it. Both kinds of scored folder share the layout of this module's file names: ``predictions/``,
``metrics.csv`` and ``summary.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

import npcseg
from npcseg.config import config_to_dict
from npcseg.evaluation.scoring import json_safe, metrics_csv, score_prediction, summarize_metrics
from npcseg.inference.postprocessing import postprocess
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import Case
from npcseg.io.images import write_image
from npcseg.preprocessing.cache import load_preprocessed
from npcseg.preprocessing.pipeline import to_original_grid
from npcseg.training.crossval_checks import check_cache, cohort_cases, require_same_grid

if TYPE_CHECKING:
    from npcseg.training.crossval import CrossValidationConfig

__all__ = [
    "METRICS_FILENAME",
    "PREDICTIONS_DIRNAME",
    "SUMMARY_FILENAME",
    "EvaluationResult",
    "evaluate_external",
    "predict_cached",
    "score_case",
]

METRICS_FILENAME = "metrics.csv"
SUMMARY_FILENAME = "summary.json"
PREDICTIONS_DIRNAME = "predictions"


@dataclass(frozen=True)
class EvaluationResult:
    """Out-of-fold (or external) predictions scored against the labels.

    Attributes:
        metrics: one record per labelled case (``case_id``, ``fold`` when applicable, the metric fields).
        summary: the content of ``summary.json``.
    """

    metrics: list[dict[str, Any]]
    summary: dict[str, Any]


def predict_cached(
    cache: Path,
    run_dirs: list[Path],
    case_ids: list[str],
    out: Path,
    config: CrossValidationConfig,
    progress: bool = False,
    cases: dict[str, Case] | None = None,
) -> None:
    """Predict cached cases with the (ensemble of) ``run_dirs``; write ``out/<case_id>.nii.gz`` masks (uint8) on
    the original T2 grids: probabilities -> original grid (linear) -> threshold -> 3D post-processing.

    When ``cases`` gives the cohort's case of an id, the prediction must lie on its label's grid.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from npcseg.inference.predictor import load_predictor

    predictor = load_predictor(
        list(run_dirs),
        tta_flip=config.tta_flip,
        postprocessing=config.postprocessing,
        num_threads=config.training.num_threads,
        threshold=config.training.threshold,
    )
    columns = (TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("cases", total=len(case_ids))
        for case_id in case_ids:
            case = load_preprocessed(cache, case_id)
            probability = to_original_grid(predictor.predict_preprocessed(case), case.record, is_mask=False)
            mask = (sitk.GetArrayViewFromImage(probability) >= config.training.threshold).astype(np.uint8)
            image = sitk.GetImageFromArray(postprocess(mask, config.postprocessing))
            image.CopyInformation(probability)
            source = cases.get(case_id) if cases is not None else None
            if source is not None and source.label is not None:
                require_same_grid(image, source.label, cache, case_id)
            write_image(image, out / f"{case_id}.nii.gz")
            bar.advance(task)


def score_case(prediction_path: Path, case: Case, config: CrossValidationConfig) -> dict[str, float]:
    """The metrics of the predicted mask at ``prediction_path`` against the labelled ``case``'s label."""
    assert case.label is not None
    return score_prediction(prediction_path, case.label, tolerance_mm=config.tolerance_mm)


def evaluate_external(
    cohort: Path, cache: Path, out: Path, run_dirs: list[Path], config: CrossValidationConfig, progress: bool = True
) -> EvaluationResult:
    """Predict an external cohort with the ensemble of ``run_dirs``; score the labelled cases.

    Writes ``out/predictions/<case_id>.nii.gz`` (existing ones kept), ``out/metrics.csv`` and
    ``out/summary.json``. Cases without a label are predicted but not scored.
    """
    cases = cohort_cases(cohort, require_labels=False)
    case_ids = [case.case_id for case in cases]
    check_cache(cache, case_ids, config.training.sequences)
    by_id = {case.case_id: case for case in cases}
    todo = [case_id for case_id in case_ids if not (out / PREDICTIONS_DIRNAME / f"{case_id}.nii.gz").is_file()]
    if todo:
        predict_cached(cache, run_dirs, todo, out / PREDICTIONS_DIRNAME, config, progress, by_id)
    rows = [
        {"case_id": case.case_id, **score_case(out / PREDICTIONS_DIRNAME / f"{case.case_id}.nii.gz", case, config)}
        for case in cases
        if case.label is not None
    ]
    summary = {"package_version": npcseg.__version__, **summarize_metrics(rows), "config": config_to_dict(config)}
    summary.update(cohort=str(cohort), num_predicted=len(case_ids), run_dirs=[str(path) for path in run_dirs])
    summary["inputs"] = {
        "cohort": str(cohort.resolve()),
        "cache": str(cache.resolve()),
        "predictions": str((out / PREDICTIONS_DIRNAME).resolve()),
    }
    atomic_write_text(out / METRICS_FILENAME, metrics_csv(rows))
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(json_safe(summary), indent=1) + "\n")
    return EvaluationResult(metrics=rows, summary=summary)
