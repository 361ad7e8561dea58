"""Reading a results folder into one model the report draws from.

Four kinds of folder are recognised (:func:`load_source`):

``crossvalidation``
    ``metrics.csv`` + ``summary.json`` + ``fold_<k>/`` (``log.csv``, ``predictions/<case_id>.nii.gz``), written by
    :mod:`npcseg.training.crossval`. Groups are the folds.
``experiment``
    the input experiment (:mod:`npcseg.evaluation.experiment`): arm folders ``t1/``, ``t2/``, ``t1_t2/``, each a
    cross-validation folder, + ``table.md``. Groups are the arms (models); unfinished arms contribute their
    learning curves only.
``evaluation``
    ``metrics.csv`` + ``summary.json`` without fold folders (``npcseg evaluate``, or a cross-validation's
    ``external/``); the predictions folder is the one given, else ``summary.json``'s ``inputs.predictions``,
    else ``predictions/`` beside it; the cohort is ``inputs.cohort`` or ``inputs.reference`` (``npcseg
    evaluate``'s name for it).
``training_run``
    a single training run: ``log.csv`` (+ ``run.json``): learning curves; a cross-validation fold's run also
    holds ``metrics.csv`` + ``predictions/`` of its held-out cases, which are shown too.

The images of a case (for the overlays) come from the cohort: the one given, else ``summary.json``'s
``inputs.cohort``, else the preprocessed cache a fold was trained on (``fold_<k>/run.json`` ``cache``), whose case
records name each case's files and hold T1's registration onto T2 (:class:`npcseg.report.case_files.CaseFiles`).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from npcseg.io.cohort import CASES_DIRNAME, load_case
from npcseg.report.case_files import CaseFiles, read_json, scored_cases
from npcseg.report.model import CaseResult, ReportData, ReportKind, TrainingLog, read_log_csv, read_metrics_csv

METRICS_FILENAME = "metrics.csv"
SUMMARY_FILENAME = "summary.json"
LOG_FILENAME = "log.csv"
RUN_FILENAME = "run.json"
PREDICTIONS_DIRNAME = "predictions"
TABLE_FILENAME = "table.md"
FOLD_PATTERN = re.compile(r"^fold_(\d+)$")
NEW_GROUP_ORDER = 10_000
"""Groups added after loading (e.g. the demo's new patient) sort after the source's own."""


def scored_case(
    case_folder: Path, prediction: Path, metrics: dict[str, float], group: str, *, cache: Path | None = None
) -> CaseResult:
    """A case scored outside a results folder (e.g. the demo's new patient), for :meth:`ReportData.with_cases`.

    Args:
        case_folder: the case's folder (``t1``, ``t2``, ``label`` images).
        prediction: its predicted mask on the T2 grid.
        metrics: its metrics (``score_prediction``).
        group: the group to show it in.
        cache: a preprocessed cache holding the case, for T1's saved registration (identity otherwise).
    """
    found = load_case(Path(case_folder))
    case = CaseResult(group, found.case_id, dict(metrics), Path(prediction) if Path(prediction).is_file() else None)
    return CaseFiles(None, [cache] if cache is not None else []).complete(case, found)


def detect_kind(folder: Path) -> ReportKind:
    """The kind of a results folder (module docstring).

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a folder.
        ValueError: it is none of the four kinds (the message names it and what was looked for).
    """
    from npcseg.evaluation.experiment import INPUT_ARMS

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: results folder not found")
    if any((folder / arm.folder).is_dir() for arm in INPUT_ARMS) or (folder / TABLE_FILENAME).is_file():
        return "experiment"
    if (folder / METRICS_FILENAME).is_file() and _fold_folders(folder):
        return "crossvalidation"
    if (folder / LOG_FILENAME).is_file():
        return "training_run"
    if (folder / METRICS_FILENAME).is_file():
        return "evaluation"
    arms = ", ".join(f"{arm.folder}/" for arm in INPUT_ARMS)
    raise ValueError(
        f"{folder}: not a results folder npcseg can report on: expected a cross-validation (metrics.csv + "
        f"fold_<k>/), an input experiment ({arms}), an evaluation (metrics.csv + summary.json) or a training "
        f"run (log.csv); found none of these"
    )


def load_source(folder: Path, *, cohort: Path | None = None, predictions: Path | None = None) -> ReportData:
    """Read a results folder (any kind of :func:`detect_kind`) into a :class:`ReportData`.

    Args:
        folder: the results folder (read only).
        cohort: the cohort whose images the overlays show (``COHORT/cases/<id>/``); by default the one the
            folder records.
        predictions: an evaluation's predictions folder, when its ``summary.json`` does not record it.

    Raises:
        FileNotFoundError: a missing folder or cohort.
        ValueError: a folder of no known kind, or an unreadable ``metrics.csv`` / ``summary.json``.
    """
    folder = Path(folder)
    if cohort is not None and not (Path(cohort) / CASES_DIRNAME).is_dir():
        raise FileNotFoundError(f"{cohort}: not a cohort (no '{CASES_DIRNAME}/' folder inside)")
    kind = detect_kind(folder)
    if kind == "crossvalidation":
        return _load_crossvalidation(folder, cohort)
    if kind == "experiment":
        return _load_experiment(folder, cohort)
    if kind == "evaluation":
        return _load_evaluation(folder, cohort, predictions)
    return _load_training_run(folder, cohort)


def _fold_folders(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for child in folder.iterdir():
        match = FOLD_PATTERN.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def _cv_cases(folder: Path, group_of: dict[str, str], files: CaseFiles, rows: list[dict[str, Any]]) -> list[CaseResult]:
    cases = []
    for row in rows:
        fold = row["fold"]
        prediction = folder / f"fold_{fold}" / PREDICTIONS_DIRNAME / f"{row['case_id']}.nii.gz"
        metrics = {key: value for key, value in row.items() if key not in ("case_id", "fold")}
        case = CaseResult(
            group=group_of.get(fold, f"fold {fold}"),
            case_id=row["case_id"],
            metrics=metrics,
            prediction=prediction if prediction.is_file() else None,
        )
        cases.append(files.complete(case))
    return cases


def _recorded_caches(folder: Path, summary: dict[str, Any]) -> list[Path]:
    caches = [Path(summary["inputs"]["cache"])] if summary.get("inputs", {}).get("cache") else []
    for _, fold_folder in _fold_folders(folder):
        cache = read_json(fold_folder / RUN_FILENAME).get("cache")
        if cache and Path(cache) not in caches:
            caches.append(Path(cache))
    return caches


def _crossvalidation_parts(
    folder: Path, cohort: Path | None, figure: str
) -> tuple[list[CaseResult], list[TrainingLog], dict[str, Any], list[str]]:
    """Cases, logs, summary and notes of one cross-validation folder (cases grouped by fold)."""
    summary = read_json(folder / SUMMARY_FILENAME)
    notes = []
    if cohort is None and summary.get("inputs", {}).get("cohort"):
        cohort = Path(summary["inputs"]["cohort"])
        if not (cohort / CASES_DIRNAME).is_dir():
            notes.append(f"the recorded cohort {cohort} is gone; overlays use the cache's file paths if any")
            cohort = None
    files = CaseFiles(cohort, _recorded_caches(folder, summary))
    rows = read_metrics_csv(folder / METRICS_FILENAME) if (folder / METRICS_FILENAME).is_file() else []
    cases = _cv_cases(folder, {}, files, rows)
    if rows and not files.known:
        notes.append(f"{folder}: no cohort known for the overlays; pass --cohort")
    logs = [
        TrainingLog(figure, f"fold {index}", fold_folder / LOG_FILENAME, read_log_csv(fold_folder / LOG_FILENAME))
        for index, fold_folder in _fold_folders(folder)
        if (fold_folder / LOG_FILENAME).is_file()
    ]
    return cases, logs, summary, notes


def _fold_sort_key(group: str) -> tuple[int, str]:
    number = group.removeprefix("fold ")
    return (int(number), "") if number.isdigit() else (NEW_GROUP_ORDER, group)


def _load_crossvalidation(folder: Path, cohort: Path | None) -> ReportData:
    cases, logs, summary, notes = _crossvalidation_parts(folder, cohort, "cross-validation")
    groups = tuple(sorted({case.group for case in cases}, key=_fold_sort_key))
    facts = [("folder", str(folder.resolve())), ("cases", str(len(cases))), ("folds", str(len(groups)))]
    model = summary.get("config", {}).get("training", {})
    if model:
        facts.append(("model", f"{model.get('model')} on {' + '.join(model.get('sequences', []))}"))
        facts.append(("epochs per fold", str(model.get("epochs"))))
    timings = summary.get("timings", {})
    if timings.get("train_seconds") is not None:
        facts.append(("training time", f"{float(timings['train_seconds']) / 60:.1f} min"))
    return ReportData(
        kind="crossvalidation",
        folder=folder,
        title=f"Cross-validation {folder.resolve().name}",
        cases=tuple(cases),
        groups=groups,
        group_label="fold",
        pooled_groups=groups,
        pooled_label="all folds (out-of-fold)",
        overlay_groups=groups,
        logs=tuple(logs),
        facts=tuple(facts),
        notes=tuple(notes),
    )


def _load_experiment(folder: Path, cohort: Path | None) -> ReportData:
    from npcseg.evaluation.experiment import INPUT_ARMS, REFERENCE_ARM

    cases: list[CaseResult] = []
    logs: list[TrainingLog] = []
    notes: list[str] = []
    finished: list[str] = []
    for arm in INPUT_ARMS:
        arm_folder = folder / arm.folder
        if not arm_folder.is_dir():
            notes.append(f"arm {arm.name} ({arm.folder}/): not started")
            continue
        arm_cases, arm_logs, _, arm_notes = _crossvalidation_parts(arm_folder, cohort, arm.name)
        logs += arm_logs
        notes += arm_notes
        if not (arm_folder / METRICS_FILENAME).is_file():
            notes.append(f"arm {arm.name} ({arm.folder}/): unfinished (no metrics.csv); learning curves only")
            continue
        finished.append(arm.name)
        cases += [replace(case, group=arm.name) for case in arm_cases]
    if not finished and not logs:
        raise ValueError(f"{folder}: input experiment with no finished arm and no training log yet")
    overlay = REFERENCE_ARM if REFERENCE_ARM in finished else (finished[-1] if finished else None)
    if overlay is not None:
        notes.append(f"worst / best case overlays are of the {overlay} model")
    table = folder / TABLE_FILENAME
    facts = [("folder", str(folder.resolve())), ("finished arms", ", ".join(finished) or "none")]
    return ReportData(
        kind="experiment",
        folder=folder,
        title=f"Input experiment {folder.resolve().name}",
        cases=tuple(cases),
        groups=tuple(finished),
        group_label="model",
        overlay_groups=(overlay,) if overlay is not None else (),
        logs=tuple(logs),
        facts=tuple(facts),
        notes=tuple(notes),
        preformatted=table.read_text() if table.is_file() else None,
    )


def _load_evaluation(folder: Path, cohort: Path | None, predictions: Path | None) -> ReportData:
    summary = read_json(folder / SUMMARY_FILENAME)
    inputs = summary.get("inputs", {}) if isinstance(summary.get("inputs"), dict) else {}
    notes = []
    if predictions is None:
        recorded = inputs.get("predictions")
        predictions = Path(recorded) if recorded else folder / PREDICTIONS_DIRNAME
    predictions = Path(predictions)
    if not predictions.is_dir():
        notes.append(f"predictions folder {predictions} not found: no overlays (pass --predictions)")
    if cohort is None:
        recorded_cohort = inputs.get("cohort") or inputs.get("reference") or summary.get("cohort")
        cohort = Path(recorded_cohort) if recorded_cohort else None
        if cohort is not None and not (cohort / CASES_DIRNAME).is_dir():
            notes.append(f"the recorded cohort {cohort} is gone: no overlays (pass --cohort)")
            cohort = None
    caches = [Path(inputs["cache"])] if inputs.get("cache") else []
    files = CaseFiles(cohort, caches)
    if not files.known:
        notes.append("no cohort known for the overlays; pass --cohort")
    cases = scored_cases(folder / METRICS_FILENAME, predictions, files, "evaluation")
    groups = tuple(sorted({case.group for case in cases}, key=_fold_sort_key))
    facts = [("folder", str(folder.resolve())), ("cases", str(len(cases))), ("predictions", str(predictions))]
    if cohort is not None:
        facts.append(("cohort", str(cohort)))
    return ReportData(
        kind="evaluation",
        folder=folder,
        title=f"Evaluation {folder.resolve().name}",
        cases=tuple(cases),
        groups=groups,
        group_label="fold" if any(group.startswith("fold ") for group in groups) else "cohort",
        pooled_groups=groups if len(groups) > 1 else (),
        pooled_label="all cases",
        overlay_groups=groups,
        facts=tuple(facts),
        notes=tuple(notes),
    )


def _load_training_run(folder: Path, cohort: Path | None) -> ReportData:
    """A training run; a cross-validation fold's run also has ``metrics.csv`` + ``predictions/`` (its held-out
    cases), which are shown too."""
    record = read_json(folder / RUN_FILENAME)
    name = folder.resolve().name
    log = TrainingLog(name, name, folder / LOG_FILENAME, read_log_csv(folder / LOG_FILENAME))
    cases: list[CaseResult] = []
    notes = ["a single training run: learning curves (and its held-out cases when it is a cross-validation fold)"]
    if (folder / METRICS_FILENAME).is_file():
        files = CaseFiles(cohort, [Path(record["cache"])] if record.get("cache") else [])
        if not files.known:
            notes.append("no cohort known for the overlays; pass --cohort")
        cases = scored_cases(folder / METRICS_FILENAME, folder / PREDICTIONS_DIRNAME, files, name)
    groups = tuple(sorted({case.group for case in cases}, key=_fold_sort_key))
    facts = [("folder", str(folder.resolve())), ("epochs logged", str(len(log.rows)))]
    if record.get("model"):
        facts.append(("model", f"{record['model']} on {' + '.join(record.get('sequences', []))}"))
    if record.get("status"):
        facts.append(("status", str(record["status"])))
    finite = [row for row in log.rows if math.isfinite(row.get("val_dice", math.nan))]
    if finite:
        best = max(finite, key=lambda row: row["val_dice"])
        facts.append(("best validation Dice", f"{best['val_dice']:.3f} (epoch {int(best['epoch'])})"))
    return ReportData(
        kind="training_run",
        folder=folder,
        title=f"Training run {name}",
        cases=tuple(cases),
        groups=groups,
        group_label="fold",
        overlay_groups=groups,
        logs=(log,),
        facts=tuple(facts),
        notes=tuple(notes),
    )
