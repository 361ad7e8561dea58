"""Patient-level cross-validation of the detect-then-segment cascade (SeqSeg Table 6), comparable with
:func:`npcseg.training.crossval.run_crossvalidation` (same folds, same metrics, same output layout).

Per fold, on the fold's training patients with the same inner validation subset as the whole-slice runs
(:func:`~npcseg.training.crossval.inner_validation_ids`), :func:`npcseg.cascade.training.train_cascade`
trains into ``fold_<k>/`` (crop jitter seeded by the cross-validation's ``seed``):

1. the box detector (:func:`npcseg.detection.training.train_detector`, inner validation logged only);
2. the crop cache of the training + inner validation patients' tumour slices (:func:`crops.build_crop_cache`);
3. the crop segmenter (:func:`npcseg.training.trainer.train` on the crop cache, ``config.training``: the RANet + DBW
   settings of the row; the best epoch picked on the inner validation patients' crops);
4. the tumour-present classifier (:func:`presence.train_presence`, best epoch on the inner validation patients).

Then every held-out patient is predicted on all its slices (:func:`cascade.predict_cascade`), the probabilities are
brought back onto the original T2 grid (:func:`npcseg.preprocessing.pipeline.to_original_grid`), thresholded at
``training.threshold`` and post-processed with the row's ``postprocessing`` -- exactly as ``run_crossvalidation``
treats a whole-slice network's probabilities -- and scored by the same code
(:func:`npcseg.training.external.score_case`).

Layout of ``OUT`` (that of run_crossvalidation, plus)::

    cascade.yaml            the resolved CascadeExperimentConfig (a rerun with other settings is refused)
    fold_<k>/cascade_training.yaml / .json   the fold's trained cascade (`npcseg predict --method seqseg --cascade`)
    fold_<k>/detector/      detector run     fold_<k>/crops/      crop cache      fold_<k>/segmenter/  training run
    fold_<k>/presence/      presence run     fold_<k>/cascade/<case_id>.json: presence and boxes per slice
    fold_<k>/predictions/   masks on the original T2 grids; fold.json adds the held-out detection and presence scores

Detection scores (recall / IoU of the detector's final box, :func:`npcseg.detection.scores.score_boxes`) are over the
held-out tumour slices, the detector run on each of them whatever the presence decision; presence scores
(:func:`presence.presence_scores`) over all held-out slices, after the z rules (``presence``) and before them
(``presence_raw``). Reruns resume piece by piece; existing predictions are kept.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

import npcseg
from npcseg.cascade.predict import CascadeConfig, check_detector_kind, load_box_detector, predict_cascade
from npcseg.cascade.presence import PresenceConfig, load_presence, presence_scores
from npcseg.config import config_differences, config_to_dict, load_config, save_config
from npcseg.data.splits import SPLITS_FILENAME, Fold, splits_for
from npcseg.detection.boxes import Box, box_of_mask
from npcseg.detection.config import DetectorConfig
from npcseg.detection.scores import score_boxes
from npcseg.evaluation.scoring import json_safe, metrics_csv, summarize_metrics
from npcseg.inference.postprocessing import PostprocessingConfig, postprocess
from npcseg.inference.runs import load_slice_segmenter
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import Case
from npcseg.io.images import write_image
from npcseg.preprocessing.cache import load_cache_config, load_preprocessed
from npcseg.preprocessing.pipeline import to_original_grid
from npcseg.training.crossval import (
    FOLD_FILENAME,
    CrossValidationConfig,
    CrossValidationResult,
    check_claim,
    fold_cases,
    prediction_path,
    trained_fold_record,
    tumour_volumes_ml,
    use_splits,
)
from npcseg.training.crossval_checks import check_cache, cohort_cases, require_same_grid
from npcseg.training.external import METRICS_FILENAME, SUMMARY_FILENAME, score_case

logger = logging.getLogger(__name__)

CASCADE_FILENAME = "cascade.yaml"


@dataclass(frozen=True)
class CascadeExperimentConfig:
    """The cascade's own settings in a cross-validation (a comparison row's ``cascade:`` section). The pixel
    threshold and the 3D post-processing are the row's ``training.threshold`` and ``postprocessing``, so the cascade
    and a whole-slice row are thresholded and cleaned alike."""

    scale: float = 1.5
    """The detector's box is enlarged this many times before cropping, in training crops too (paper 1.5)."""
    crop_size: int = 64
    """Side in pixels of the segmenter's crops (a multiple of 32 for RANet)."""
    crop_jitter: float = 0.1
    """Training crops: largest random shift / resize of the ground-truth box, a fraction of its size (ours)."""
    presence_threshold: float = 0.5
    """A slice holds tumour when the presence probability is at least this."""
    presence_fill_gaps: bool = True
    """A negative slice between two positive ones counts as positive."""
    presence_min_run: int = 2
    """Runs of fewer consecutive positive slices are dropped."""
    detector_backbone: str = "presence"
    """The detector's frozen backbone: ``presence`` = the encoder of the tumour-present classifier trained first on
    the same cases (a backbone pre-trained on these labels; the paper's ImageNet ResNet-50 is not available here, and
    a randomly initialised one gave features too alike for the agent to learn from), or ``detector`` = what
    ``detector.backbone_weights`` says (a local weights file, or random)."""
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    """The box detector's settings (the ``dql`` kind's)."""
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    """The tumour-present classifier's settings."""
    detector_kind: str = "dql"
    """``dql``: the paper's deep-Q-learning agent (``detector``, ``detector_backbone``); ``heatmap`` (ours): a
    whole-slice segmenter trained with the row's ``training`` settings on the same cases, its thresholded
    probability map boxed (:mod:`npcseg.detection.heatmap`)."""
    heatmap_threshold: float | None = None
    """The heat-map detector's threshold; ``None`` = the row's ``training.threshold``."""
    presence_classifier: bool = True
    """Train and apply the tumour-present classifier (with its z rules). ``False`` (ours; ``heatmap`` only, as the
    agent puts a box on every slice): a slice holds tumour where the detector finds a box."""

    def __post_init__(self) -> None:
        check_detector_kind(self.detector_kind, self.heatmap_threshold)
        if not self.presence_classifier and self.detector_kind != "heatmap":
            raise ValueError("presence_classifier: false needs detector_kind: heatmap (the agent boxes every slice)")
        if self.detector_backbone not in ("presence", "detector"):
            raise ValueError(f"detector_backbone must be 'presence' or 'detector', got {self.detector_backbone!r}")
        if self.detector_backbone == "presence" and self.detector.backbone_weights is not None:
            raise ValueError("detector.backbone_weights is set: use detector_backbone: detector to take it")

    def prediction_config(self, threshold: float, postprocessing: PostprocessingConfig) -> CascadeConfig:
        """The :class:`CascadeConfig` of prediction with the row's threshold and post-processing."""
        return CascadeConfig(
            scale=self.scale,
            crop_size=self.crop_size,
            presence_threshold=self.presence_threshold,
            presence_fill_gaps=self.presence_fill_gaps,
            presence_min_run=self.presence_min_run,
            threshold=threshold,
            postprocessing=postprocessing,
            detector_kind=self.detector_kind,
            heatmap_threshold=self.heatmap_threshold,
        )


def run_cascade_crossvalidation(
    cohort: Path,
    cache: Path,
    out: Path,
    config: CrossValidationConfig,
    cascade: CascadeExperimentConfig,
    *,
    splits: list[Fold] | None = None,
    progress: bool = True,
) -> CrossValidationResult:
    """Train the cascade's pieces per fold, predict every held-out patient, score (resumable; module docstring).

    Args:
        cohort: the labelled cohort; its label files are the reference.
        cache: its preprocessed cache holding every sequence the pieces need.
        out: the cross-validation folder (created).
        config: folds, inner validation, the crop segmenter's ``training``, ``postprocessing``, ``tolerance_mm``
            (``tta_flip`` is not used by the cascade).
        cascade: the cascade's settings.
        splits: the folds (shared with the other rows of a comparison); default ``splits.json`` or new folds.
        progress: show the training progress bars.

    Returns:
        A :class:`~npcseg.training.crossval.CrossValidationResult`; ``summary`` also holds ``detection`` and
        ``presence`` over all held-out slices.
    """
    cohort, cache, out = Path(cohort), Path(cache), Path(out)
    cases = cohort_cases(cohort)
    case_ids = [case.case_id for case in cases]
    needed = (*config.training.sequences, *cascade.detector.sequences, *cascade.presence.sequences)
    check_cache(cache, case_ids, tuple(dict.fromkeys(needed)))
    check_claim(out, config)
    _claim_cascade(out, cascade)
    if splits is None:
        folds = splits_for(
            out / SPLITS_FILENAME, case_ids, tumour_volumes_ml(cache, case_ids), config.num_folds, config.seed
        )
    else:
        folds = use_splits(out / SPLITS_FILENAME, splits, case_ids, config.num_folds)
    if not (out / "cv.yaml").is_file():
        save_config(config, out / "cv.yaml")
    by_id = {case.case_id: case for case in cases}
    records = [_run_fold(fold, cache, out, config, cascade, by_id, progress) for fold in folds]
    rows: list[dict[str, Any]] = [
        {
            "case_id": case_id,
            "fold": fold.fold,
            **score_case(prediction_path(out / f"fold_{fold.fold}", case_id), by_id[case_id], config),
        }
        for fold in folds
        for case_id in fold.val
    ]
    rows.sort(key=lambda row: str(row["case_id"]))
    for fold in folds:
        atomic_write_text(
            out / f"fold_{fold.fold}" / METRICS_FILENAME, metrics_csv([row for row in rows if row["fold"] == fold.fold])
        )
    pooled = [_read_case(out / f"fold_{fold.fold}", case_id) for fold in folds for case_id in fold.val]
    summary = {
        "package_version": npcseg.__version__,
        "num_folds": len(folds),
        **summarize_metrics(rows),
        **_pieces_scores(pooled, cascade.presence_threshold),
        "timings": {
            key: sum(float(record.get(key, 0.0)) for record in records) for key in ("train_seconds", "predict_seconds")
        },
        "folds": records,
        "config": config_to_dict(config),
        "cascade": config_to_dict(cascade),
        "inputs": {"cohort": str(cohort.resolve()), "cache": str(cache.resolve())},
    }
    atomic_write_text(out / METRICS_FILENAME, metrics_csv(rows))
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(json_safe(summary), indent=1) + "\n")
    return CrossValidationResult(out=out, folds=folds, metrics=rows, summary=summary)


def _claim_cascade(out: Path, cascade: CascadeExperimentConfig) -> None:
    path = out / CASCADE_FILENAME
    if path.is_file():
        changes = config_differences(
            config_to_dict(load_config(CascadeExperimentConfig, path)), config_to_dict(cascade)
        )
        if changes:
            raise ValueError(f"{out}: this cascade cross-validation was run with other settings ({'; '.join(changes)})")
        return
    out.mkdir(parents=True, exist_ok=True)
    save_config(cascade, path)


def _run_fold(
    fold: Fold,
    cache: Path,
    out: Path,
    config: CrossValidationConfig,
    cascade: CascadeExperimentConfig,
    cases: dict[str, Case],
    progress: bool,
) -> dict[str, Any]:
    """Train the fold's pieces (:func:`~npcseg.cascade.training.train_cascade`, skipped when the fold
    is trained), predict its held-out cases; its ``fold.json``."""
    from npcseg.cascade.training import CascadeTrainingConfig, train_cascade

    fold_dir = out / f"fold_{fold.fold}"
    record_path = fold_dir / FOLD_FILENAME
    record: dict[str, Any] = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("status") not in ("trained", "complete"):
        train_ids, inner = fold_cases(fold, config)
        logger.info("cascade fold %d: %d training case(s), %d inner validation", fold.fold, len(train_ids), len(inner))
        started = time.perf_counter()
        trained = train_cascade(
            cache,
            train_ids,
            fold_dir,
            CascadeTrainingConfig(cascade=cascade, training=config.training, crop_seed=config.seed),
            val_ids=inner,
            progress=progress,
        )
        record = trained_fold_record(
            fold,
            train_ids,
            inner,
            segmenter_best_epoch=trained.segmenter.best_epoch,
            segmenter_best_inner_val_dice=trained.segmenter.best_val_dice,
            presence_inner_validation=None if trained.presence is None else trained.presence["result"],
            train_seconds=time.perf_counter() - started,
            detector_epochs=trained.detector.num_epochs,
        )
        atomic_write_text(record_path, json.dumps(json_safe(record), indent=1) + "\n")
    todo = [case_id for case_id in fold.val if not prediction_path(fold_dir, case_id).is_file()]
    if todo:
        started = time.perf_counter()
        prediction_config = cascade.prediction_config(config.training.threshold, config.postprocessing)
        models = (
            load_box_detector(fold_dir / "detector", prediction_config),
            load_slice_segmenter(fold_dir / "segmenter")[0],
            load_presence(fold_dir / "presence") if cascade.presence_classifier else None,
        )
        for case_id in todo:
            _predict_case(cache, case_id, fold_dir, models, prediction_config, cases.get(case_id))
        record["predict_seconds"] = record.get("predict_seconds", 0.0) + time.perf_counter() - started
    record.update(
        status="complete", **_pieces_scores([_read_case(fold_dir, c) for c in fold.val], cascade.presence_threshold)
    )
    atomic_write_text(record_path, json.dumps(json_safe(record), indent=1) + "\n")
    return record


def _predict_case(
    cache: Path, case_id: str, fold_dir: Path, models: tuple[Any, Any, Any], config: CascadeConfig, case: Case | None
) -> None:
    """Predict one held-out case; write ``cascade/<case_id>.json`` then the mask on the original T2 grid."""
    detector, segmenter, presence = models
    preprocessed = load_preprocessed(cache, case_id)
    sequences = preprocessed.record.get("sequences") or load_cache_config(cache).sequences
    result = predict_cascade(preprocessed.image, detector, segmenter, presence, config, image_sequences=sequences)
    label = preprocessed.label if preprocessed.label is not None else np.zeros(preprocessed.image.shape[1:], np.uint8)
    targets = [box_of_mask(label[z] != 0) for z in range(label.shape[0])]
    channels = [list(sequences).index(sequence) for sequence in detector.sequences]
    # the detector's box on every tumour slice: the cascade ran it on every slice without a presence classifier,
    # else on the slices the classifier kept; only the others need it now
    detector_ran = np.ones(len(targets), dtype=bool) if presence is None else result.presence
    detections: list[Box | None] = []
    for z, target in enumerate(targets):
        if target is None or detector_ran[z]:
            detections.append(None if target is None else result.detections[z])
        else:
            detections.append(_box_of(detector.detect(preprocessed.image[channels, z])))
    described = {
        **result.describe(),
        "truth": [target is not None for target in targets],
        "targets": [None if box is None else list(box.as_tuple()) for box in targets],
        "target_detections": [None if box is None else list(box.as_tuple()) for box in detections],
    }
    atomic_write_text(fold_dir / "cascade" / f"{case_id}.json", json.dumps(described) + "\n")
    probability = to_original_grid(result.probability, preprocessed.record, is_mask=False)
    mask = (sitk.GetArrayViewFromImage(probability) >= config.threshold).astype(np.uint8)
    image = sitk.GetImageFromArray(postprocess(mask, config.postprocessing))
    image.CopyInformation(probability)
    if case is not None and case.label is not None:
        require_same_grid(image, case.label, cache, case_id)
    write_image(image, prediction_path(fold_dir, case_id))


def _box_of(found: Any) -> Box | None:
    """The box of a detection, ``None`` for none (a heat-map detector may find nothing)."""
    return None if found is None else found.box


def _read_case(fold_dir: Path, case_id: str) -> dict[str, Any]:
    described: dict[str, Any] = json.loads((fold_dir / "cascade" / f"{case_id}.json").read_text())
    return described


def _pieces_scores(described: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Detection scores on the tumour slices and presence scores on all slices of the described cases."""
    pairs = [
        (None if found is None else Box(*found), Box(*target))
        for case in described
        for found, target in zip(case["target_detections"], case["targets"], strict=True)
        if target is not None
    ]
    truth = np.concatenate([np.asarray(case["truth"], bool) for case in described]) if described else np.zeros(0, bool)
    decided = np.concatenate([np.asarray(case["presence"], bool) for case in described]) if described else truth
    raw = (
        np.concatenate([np.asarray(case["presence_probability"]) >= threshold for case in described])
        if described
        else truth
    )
    detection = score_boxes([found for found, _ in pairs], [target for _, target in pairs])
    return {
        "detection": detection.to_dict(),
        "presence": vars(presence_scores(decided, truth)),
        "presence_raw": vars(presence_scores(raw, truth)),
    }
