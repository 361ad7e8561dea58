"""Patient-level k-fold cross-validation (METHODS.md method 1, "Evaluation"; the paper: 10 folds).

For each fold k the network is trained on the other folds' patients and predicts fold k's held-out patients, so
every patient gets exactly one out-of-fold prediction. The epoch to keep (``checkpoint_best.pt``) is chosen on an
*inner* validation subset carved from the fold's training patients (``inner_validation_fraction``, at least one
patient), never on the held-out patients: selecting the epoch on the patients one then reports on would leak them
into the model choice and flatter the numbers. The paper does not say how it picked its final epochs.

A held-out case is predicted from the preprocessed cache (the same arrays the trainer used;
:func:`npcseg.training.external.predict_cached`), its probabilities brought back onto the case's original T2 grid
(:func:`npcseg.preprocessing.pipeline.to_original_grid`, linear), thresholded at ``training.threshold`` and
post-processed in 3D (:func:`npcseg.inference.postprocessing.postprocess`).
Metrics compare that mask with the cohort's original label file at the original T2 spacing.

Layout of ``OUT`` (see ``/work/notes/deu.md``)::

    splits.json       patient-level folds stratified by tumour volume (npcseg.data.splits); reused on reruns
    cv.yaml           the resolved CrossValidationConfig; a rerun with another config is refused
    fold_<k>/         a training run folder + fold.json (inner validation ids, timings, status)
                      + predictions/<case_id>.nii.gz (uint8 masks on the original T2 grids)
    metrics.csv       one row per case: case_id, fold, every SegmentationMetrics field
    summary.json      per metric: mean, sd, median, min, max, num_values, num_excluded; per fold means; timings
    external/         optional: predictions/, metrics.csv, summary.json of an external cohort (ensemble of folds)

Reruns resume: a fold whose ``fold.json`` says complete is not trained again; an interrupted fold resumes from
its checkpoints (the trainer's job); existing prediction files are kept.

Code layout: the checks of the cohort and the caches are in :mod:`npcseg.training.crossval_checks`; predicting cached
cases, scoring them and the external cohort's evaluation in :mod:`npcseg.training.external`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import npcseg
from npcseg.config import config_differences, config_to_dict, load_config, load_config_over, save_config
from npcseg.data.splits import SPLITS_FILENAME, Fold, require_same_cases, save_splits, splits_for
from npcseg.evaluation.scoring import json_safe, metrics_csv, summarize_metrics
from npcseg.inference.postprocessing import PostprocessingConfig
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import Case
from npcseg.io.volume import Grid
from npcseg.preprocessing.cache import load_record
from npcseg.training.config import TrainingConfig
from npcseg.training.crossval_checks import check_cache, check_same_preprocessing, cohort_cases
from npcseg.training.external import (
    METRICS_FILENAME,
    PREDICTIONS_DIRNAME,
    SUMMARY_FILENAME,
    EvaluationResult,
    evaluate_external,
    predict_cached,
    score_case,
)

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "cv.yaml"
FOLD_FILENAME = "fold.json"
EXTERNAL_DIRNAME = "external"


@dataclass(frozen=True)
class CrossValidationConfig:
    """Settings of a cross-validation (saved as ``cv.yaml``)."""

    num_folds: int = 10
    """Number of patient-level folds (the paper: 10)."""
    seed: int = 0
    """Seed of the volume-stratified fold assignment and of each fold's inner validation subset."""
    inner_validation_fraction: float = 0.15
    """Share of a fold's training patients held back to pick the best epoch (at least 1 patient); the fold's
    held-out patients never take part in training or model selection."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """The training settings of every fold (model, sequences, epochs, ...)."""
    postprocessing: PostprocessingConfig = field(default_factory=PostprocessingConfig)
    """3D clean-up of each out-of-fold mask (the paper: drop components spanning a single slice)."""
    tta_flip: bool = False
    """Average the prediction with that of the left-right flipped slices (test-time augmentation)."""
    tolerance_mm: float = 2.0
    """Surface-Dice tolerance in mm."""

    def __post_init__(self) -> None:
        if self.num_folds < 2:
            raise ValueError(f"num_folds must be at least 2, got {self.num_folds}")
        if not 0.0 < self.inner_validation_fraction < 1.0:
            raise ValueError(f"inner_validation_fraction must lie in (0, 1), got {self.inner_validation_fraction}")
        if self.tolerance_mm < 0:
            raise ValueError(f"tolerance_mm must be >= 0, got {self.tolerance_mm}")


@dataclass(frozen=True)
class CrossValidationResult:
    """What :func:`run_crossvalidation` produced.

    Attributes:
        out: the cross-validation folder.
        folds: the folds used.
        metrics: one record per case (``case_id``, ``fold``, the metric fields), sorted by case id.
        summary: the content of ``summary.json``.
        external: the external cohort's evaluation, when one was given.
    """

    out: Path
    folds: list[Fold]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]
    external: EvaluationResult | None = None


def tumour_volumes_ml(cache: Path, case_ids: list[str]) -> list[float]:
    """Each case's tumour volume in ml on its original T2 grid, from the cache records (no image is read).

    Raises:
        FileNotFoundError: a case is not in the cache.
        ValueError: a cached case has no label.
    """
    volumes = []
    for case_id in case_ids:
        record = load_record(cache, case_id)
        voxels = record["label"].get("foreground_voxels_original")
        if voxels is None:
            raise ValueError(f"{cache}: cached case {case_id!r} has no label")
        spacing = Grid.from_dict(record["original_grid"]).spacing_xyz
        volumes.append(float(voxels) * float(np.prod(spacing)) / 1000.0)
    return volumes


def inner_validation_ids(fold: Fold, fraction: float, seed: int) -> list[str]:
    """The fold's inner validation cases: ``max(1, round(fraction * n_train))`` of its training cases, drawn
    with a generator seeded by ``(seed, fold)`` (sorted).

    Raises:
        ValueError: when the fold has fewer than 2 training cases (nothing would be left to train on).
    """
    if len(fold.train) < 2:
        raise ValueError(f"fold {fold.fold} has {len(fold.train)} training case(s); an inner validation needs 2+")
    count = min(max(1, round(fraction * len(fold.train))), len(fold.train) - 1)
    rng = np.random.default_rng([seed, fold.fold])
    return sorted(str(case_id) for case_id in rng.choice(sorted(fold.train), size=count, replace=False))


def fold_cases(fold: Fold, config: CrossValidationConfig) -> tuple[list[str], list[str]]:
    """``(training ids, inner validation ids)`` a fold trains on: its training cases split by
    :func:`inner_validation_ids` with ``config``'s fraction and seed."""
    inner = inner_validation_ids(fold, config.inner_validation_fraction, config.seed)
    return [case_id for case_id in fold.train if case_id not in inner], inner


def trained_fold_record(fold: Fold, train_ids: list[str], inner: list[str], **facts: Any) -> dict[str, Any]:
    """A trained fold's ``fold.json`` record: its number, status, case ids, then ``facts`` (what training gave)."""
    return {
        "fold": fold.fold,
        "status": "trained",
        "train": train_ids,
        "inner_validation": inner,
        "held_out": list(fold.val),
        **facts,
    }


def run_crossvalidation(
    cohort: Path,
    cache: Path,
    out: Path,
    config: CrossValidationConfig,
    external_cohort: Path | None = None,
    external_cache: Path | None = None,
    progress: bool = True,
    *,
    splits: list[Fold] | None = None,
    parallel_folds: int = 1,
) -> CrossValidationResult:
    """Train, predict out of fold and evaluate every fold (resumable; see the module docstring).

    Args:
        cohort: the labelled cohort (``COHORT/cases/<id>/``); its label files are the reference. Never modified.
        cache: its preprocessed cache (``npcseg preprocess``), holding every case and the training sequences.
        out: the cross-validation folder (created).
        config: the settings.
        external_cohort: optional external cohort, predicted by the ensemble of all folds.
        external_cache: its preprocessed cache (required with ``external_cohort``).
        progress: show the trainer's and the prediction progress bars.
        splits: folds to use (e.g. shared between the arms of an experiment); saved as ``splits.json``; by
            default the saved ``splits.json`` or new volume-stratified folds.
        parallel_folds: folds trained at once in separate (spawned) processes; each gets ``cores //
            parallel_folds`` torch threads unless ``training.num_threads`` sets them. The result equals the
            serial one when ``training.num_threads`` is set (the same thread count gives the same arithmetic).

    Raises:
        FileNotFoundError: missing cohort, cache, case in the cache or label.
        ValueError: cases without labels, a different ``cv.yaml`` or ``splits.json`` in ``out``, a cache lacking
            a training sequence, a cache built from another cohort's grids.
    """
    cohort, cache, out = Path(cohort), Path(cache), Path(out)
    if (external_cohort is None) != (external_cache is None):
        raise ValueError("an external cohort needs its preprocessed cache too (give both or neither)")
    cases = cohort_cases(cohort)
    case_ids = [case.case_id for case in cases]
    check_cache(cache, case_ids, config.training.sequences)
    check_claim(out, config)  # refuse before writing anything
    out.mkdir(parents=True, exist_ok=True)
    if splits is None:
        volumes = tumour_volumes_ml(cache, case_ids)
        folds = splits_for(out / SPLITS_FILENAME, case_ids, volumes, config.num_folds, config.seed)
    else:
        folds = use_splits(out / SPLITS_FILENAME, splits, case_ids, config.num_folds)
    if not (out / CONFIG_FILENAME).is_file():
        save_config(config, out / CONFIG_FILENAME)

    by_id = {case.case_id: case for case in cases}
    if parallel_folds < 1:
        raise ValueError(f"parallel_folds must be at least 1, got {parallel_folds}")
    if parallel_folds > 1 and len(folds) > 1:
        fold_records = _run_folds_in_parallel(folds, cache, out, config, by_id, parallel_folds)
    else:
        fold_records = [_run_fold(fold, cache, out, config, by_id, progress) for fold in folds]
    rows: list[dict[str, Any]] = []
    for fold in folds:
        for case_id in fold.val:
            prediction = prediction_path(out / f"fold_{fold.fold}", case_id)
            rows.append({"case_id": case_id, "fold": fold.fold, **score_case(prediction, by_id[case_id], config)})
    rows.sort(key=lambda row: row["case_id"])
    for fold in folds:
        members = [row for row in rows if row["fold"] == fold.fold]
        atomic_write_text(out / f"fold_{fold.fold}" / METRICS_FILENAME, metrics_csv(members))
    summary = {
        "package_version": npcseg.__version__,
        "num_folds": len(folds),
        **summarize_metrics(rows),
        "timings": {
            "train_seconds": sum(float(record.get("train_seconds", 0.0)) for record in fold_records),
            "predict_seconds": sum(float(record.get("predict_seconds", 0.0)) for record in fold_records),
        },
        "folds": fold_records,
        "config": config_to_dict(config),
        "inputs": {"cohort": str(cohort.resolve()), "cache": str(cache.resolve())},
    }
    atomic_write_text(out / METRICS_FILENAME, metrics_csv(rows))
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(json_safe(summary), indent=1) + "\n")

    external = None
    if external_cohort is not None and external_cache is not None:
        check_same_preprocessing(cache, Path(external_cache))
        run_dirs = [out / f"fold_{fold.fold}" for fold in folds]
        external = evaluate_external(
            Path(external_cohort), Path(external_cache), out / EXTERNAL_DIRNAME, run_dirs, config, progress
        )
    return CrossValidationResult(out=out, folds=folds, metrics=rows, summary=summary, external=external)


def check_claim(out: Path, config: CrossValidationConfig) -> None:
    """Refuse when ``out`` holds a ``cv.yaml`` that differs from ``config``."""
    path = out / CONFIG_FILENAME
    if not path.is_file():
        return
    saved = config_to_dict(load_config(CrossValidationConfig, path))
    wanted = config_to_dict(config)  # plain data: a YAML round trip turns tuples in dict fields into lists
    if saved != wanted:
        changes = config_differences(saved, wanted)
        raise ValueError(
            f"{out}: this cross-validation folder was run with other settings ({'; '.join(changes)}); "
            "use a new output folder"
        )


def use_splits(path: Path, folds: list[Fold], case_ids: list[str], num_folds: int) -> list[Fold]:
    """Save given folds as ``path`` (or check an existing file holds the same folds)."""
    require_same_cases(folds, case_ids, "the given splits")
    if len(folds) != num_folds:
        raise ValueError(f"the given splits hold {len(folds)} folds but the config asks for {num_folds}")
    if path.is_file():
        from npcseg.data.splits import load_splits

        if load_splits(path) != list(folds):
            raise ValueError(f"{path}: differs from the splits given; use a new output folder")
        return list(folds)
    save_splits(folds, path)
    return list(folds)


def prediction_path(run_dir: Path, case_id: str) -> Path:
    """Where a fold folder keeps a held-out case's mask on its original T2 grid."""
    return run_dir / PREDICTIONS_DIRNAME / f"{case_id}.nii.gz"


def _run_fold(
    fold: Fold, cache: Path, out: Path, config: CrossValidationConfig, cases: dict[str, Case], progress: bool
) -> dict[str, Any]:
    """Train one fold (unless complete) and predict its held-out cases; returns its ``fold.json`` record."""
    from npcseg.training.trainer import train

    run_dir = out / f"fold_{fold.fold}"
    record_path = run_dir / FOLD_FILENAME
    record: dict[str, Any] = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("status") != "complete":
        train_ids, inner = fold_cases(fold, config)
        logger.info("fold %d: training on %d case(s), %d inner validation", fold.fold, len(train_ids), len(inner))
        result = train(cache, run_dir, config.training, train_ids, inner, progress=progress)
        record = trained_fold_record(
            fold,
            train_ids,
            inner,
            best_epoch=result.best_epoch,
            best_inner_val_dice=result.best_val_dice,
            train_seconds=result.seconds,
        )
        atomic_write_text(record_path, json.dumps(json_safe(record), indent=1) + "\n")
    else:
        logger.info("fold %d: complete, skipped", fold.fold)
    todo = [case_id for case_id in fold.val if not prediction_path(run_dir, case_id).is_file()]
    if todo:
        start = time.perf_counter()
        predict_cached(cache, [run_dir], todo, run_dir / PREDICTIONS_DIRNAME, config, progress, cases)
        record["predict_seconds"] = record.get("predict_seconds", 0.0) + time.perf_counter() - start
    record["status"] = "complete"
    atomic_write_text(record_path, json.dumps(json_safe(record), indent=1) + "\n")
    return record


def _start_fold_worker(num_threads: int) -> None:
    """Fold-worker initialiser: torch and SimpleITK threads (the trainer overrides torch's when the config sets
    ``num_threads``)."""
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(num_threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(num_threads)


def _run_folds_in_parallel(
    folds: list[Fold],
    cache: Path,
    out: Path,
    config: CrossValidationConfig,
    cases: dict[str, Case],
    num_processes: int,
) -> list[dict[str, Any]]:
    """:func:`_run_fold` for every fold in a pool of spawned processes (no progress bars; log lines instead).
    On an error the queued folds are cancelled, the running ones finish (their folders stay resumable) and the
    error is raised."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    num_processes = min(num_processes, len(folds))
    num_threads = max(1, (os.cpu_count() or 1) // num_processes)
    logger.info("training %d folds in %d processes of %d thread(s)", len(folds), num_processes, num_threads)
    pool = ProcessPoolExecutor(
        max_workers=num_processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_fold_worker,
        initargs=(num_threads,),
    )
    records: dict[int, dict[str, Any]] = {}
    try:
        futures = {pool.submit(_run_fold, fold, cache, out, config, cases, False): fold.fold for fold in folds}
        for future in as_completed(futures):
            records[futures[future]] = future.result()
            logger.info("fold %d: done", futures[future])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [records[fold.fold] for fold in folds]


def with_epochs(config: CrossValidationConfig, epochs: int) -> CrossValidationConfig:
    """``config`` with ``training.epochs`` replaced."""
    return dataclasses.replace(config, training=dataclasses.replace(config.training, epochs=epochs))


def resolve_config(
    path: Path | None = None, num_folds: int | None = None, epochs: int | None = None
) -> CrossValidationConfig:
    """The defaults, overridden by a YAML file of (some) fields (nested sections merge key by key), then by
    explicit ``num_folds`` / ``epochs`` (command-line options)."""
    config = CrossValidationConfig()
    if path is not None:
        config = load_config_over(config, Path(path))
    if num_folds is not None:
        config = dataclasses.replace(config, num_folds=num_folds)
    if epochs is not None:
        config = with_epochs(config, epochs)
    return config
