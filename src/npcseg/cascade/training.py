"""Training the detect-then-segment cascade's three pieces on one set of cases (SeqSeg, METHODS.md method 2,
"Cascade"), and reading a trained cascade back for prediction.

:func:`train_cascade` trains, on the training cases of a preprocessed cache (validation cases logged or used to pick
the best epoch where a piece does so):

1. the tumour-present classifier (:func:`presence.train_presence`; best epoch on the validation cases);
2. the box detector: with ``detector_kind: dql`` the agent (:func:`npcseg.detection.training.train_detector`;
   validation recall logged only), its frozen backbone the presence classifier's encoder unless
   ``detector_backbone`` says otherwise; with ``heatmap`` a whole-slice segmenter (:func:`npcseg.training.trainer.
   train` with ``training`` on the cache; best epoch on the validation cases) whose map the heat-map detector boxes;
3. the crop cache of the training + validation cases' tumour slices (:func:`crops.build_crop_cache`, jittered
   ground-truth boxes enlarged ``scale`` times, seeded by ``crop_seed``);
4. the crop segmenter (:func:`npcseg.training.trainer.train` on the crop cache with ``training``: e.g. RANet + DBW,
   optionally with SeqSeg's joint schedule ``learning_rate_drop_epoch``; best epoch on the validation cases' crops).

Each piece resumes or is kept when complete, and refuses other settings or cases; so does the folder as a whole
(``cascade_training.yaml``). A cascade cross-validation (:mod:`npcseg.cascade.crossval`) runs this in every fold folder.

Layout of ``OUT``::

    cascade_training.yaml   the resolved CascadeTrainingConfig
    cascade_training.json   status, case ids, what each piece reported, seconds
    detector/  crops/  segmenter/  presence/

:func:`load_trained_cascade` turns such a folder -- or a fold folder of a cascade cross-validation written before
the folds carried ``cascade_training.yaml`` (settings then from the parent's ``cascade.yaml``) -- into a
:class:`~npcseg.cascade.predictor.CascadePredictor` for ``npcseg predict --method seqseg``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from npcseg.cascade.crossval import CASCADE_FILENAME, CascadeExperimentConfig
from npcseg.config import config_differences, config_to_dict, load_config, load_config_over, save_config
from npcseg.evaluation.scoring import json_safe
from npcseg.io.atomic import atomic_write_text
from npcseg.training.config import TrainingConfig

if TYPE_CHECKING:
    from npcseg.cascade.predictor import CascadePredictor
    from npcseg.detection.training import DetectorRunResult
    from npcseg.inference.postprocessing import PostprocessingConfig
    from npcseg.training.trainer import TrainResult

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "cascade_training.yaml"
RECORD_FILENAME = "cascade_training.json"
DETECTOR_KEYS = ("loss", "train_recall", "val_recall_mean", "val_recall_min", "val_iou_mean")
"""The detector's last-epoch log values kept in ``cascade_training.json``."""


@dataclass(frozen=True)
class CascadeTrainingConfig:
    """Everything that decides a trained cascade (``npcseg detect cascade-train --config``; saved with it)."""

    cascade: CascadeExperimentConfig = field(default_factory=CascadeExperimentConfig)
    """The cascade's own settings: the ``cascade:`` section of a Table 6 comparison row (crops, presence, the
    ``detector:`` and ``presence:`` sub-sections)."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """The crop segmenter's training (a comparison row's ``training:``; its ``threshold`` is the cascade's)."""
    crop_seed: int = 0
    """Seed of the training crops' jitter (a cross-validation passes its own ``seed``)."""


def load_cascade_training_config(path: Path) -> CascadeTrainingConfig:
    """A YAML file of (some) :class:`CascadeTrainingConfig` fields over the defaults (nested sections merge key by
    key; unknown keys are ``ValueError``s naming the file)."""
    return load_config_over(CascadeTrainingConfig(), Path(path))


@dataclass(frozen=True)
class CascadeTrainingResult:
    """What :func:`train_cascade` did.

    Attributes:
        out: the cascade folder.
        detector: the detector run's result (the whole-slice segmenter's for the ``heatmap`` kind).
        segmenter: the crop segmenter run's result.
        presence: the presence run's ``run.json`` (``result``: best epoch and its validation scores); ``None``
            without a presence classifier.
        num_crop_train_cases / num_crop_val_cases: cases with tumour slices the segmenter trained / validated on.
        seconds: wall seconds of this call.
    """

    out: Path
    detector: DetectorRunResult | TrainResult
    segmenter: TrainResult
    presence: dict[str, Any] | None
    num_crop_train_cases: int
    num_crop_val_cases: int
    seconds: float


def _claim(out: Path, config: CascadeTrainingConfig, train_ids: list[str], val_ids: list[str]) -> None:
    """Write ``cascade_training.yaml`` (and the record's case ids), or check the folder holds this very cascade."""
    config_path, record_path = out / CONFIG_FILENAME, out / RECORD_FILENAME
    if config_path.is_file():
        changes = config_differences(
            config_to_dict(load_config(CascadeTrainingConfig, config_path)), config_to_dict(config)
        )
        if changes:
            raise ValueError(
                f"{out}: holds a cascade trained with other settings ({'; '.join(changes)}); use a new folder"
            )
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if (record["train_ids"], record["val_ids"]) != (train_ids, val_ids):
            raise ValueError(
                f"{out}: holds a cascade trained on other cases (train {record['train_ids']}, validation "
                f"{record['val_ids']}); use a new folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    if not config_path.is_file():
        save_config(config, config_path)
    if not record_path.is_file():
        record = {"status": "running", "train_ids": train_ids, "val_ids": val_ids}
        atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")


def train_cascade(
    cache: Path,
    train_ids: Sequence[str],
    out: Path,
    config: CascadeTrainingConfig,
    *,
    val_ids: Sequence[str] = (),
    progress: bool = True,
) -> CascadeTrainingResult:
    """Train the detector, the crop segmenter and the presence classifier into ``out`` (module docstring).

    Args:
        cache: the preprocessed cache (``npcseg preprocess`` output) holding every sequence the pieces take.
        train_ids: labelled training cases.
        out: the cascade folder (created; a rerun resumes each piece and keeps finished ones).
        config: the settings.
        val_ids: labelled validation cases (detector recall logged; best epochs of the segmenter and the presence
            classifier); may be empty.
        progress: show the pieces' progress bars.

    Raises:
        ValueError: no training case, overlapping ids, no tumour slice in the training cases, or a folder holding a
            cascade (or a piece) of other settings or cases.
        FileNotFoundError: the cache or a case is missing.
    """
    from npcseg.cascade.crops import build_crop_cache
    from npcseg.cascade.presence import train_presence
    from npcseg.detection.training import train_detector
    from npcseg.preprocessing.cache import list_preprocessed
    from npcseg.training.cases import check_disjoint_ids
    from npcseg.training.trainer import train

    cache, out = Path(cache), Path(out)
    train_list, val_list = list(train_ids), list(val_ids)
    check_disjoint_ids(train_list, val_list)
    _claim(out, config, train_list, val_list)
    started = time.perf_counter()
    settings = config.cascade
    logger.info("%s: cascade on %d training case(s), %d validation", out, len(train_list), len(val_list))
    presence = (
        train_presence(cache, train_list, out / "presence", settings.presence, val_ids=val_list, progress=progress)
        if settings.presence_classifier
        else None
    )
    detector: DetectorRunResult | TrainResult
    if settings.detector_kind == "heatmap":
        detector = train(cache, out / "detector", config.training, train_list, val_list, progress=progress)
        detector_record = {
            "kind": "heatmap",
            "best_epoch": detector.best_epoch,
            "best_val_dice": detector.best_val_dice,
        }
    else:
        detector_settings = settings.detector
        if settings.detector_backbone == "presence":
            presence_dir = str((out / "presence").resolve())
            detector_settings = dataclasses.replace(detector_settings, backbone_weights=presence_dir)
        detector = train_detector(
            cache, train_list, out / "detector", detector_settings, val_ids=val_list, progress=progress
        )
        detector_record = {"epochs": detector.num_epochs, **{key: detector.log[-1].get(key) for key in DETECTOR_KEYS}}
    crops = build_crop_cache(
        cache,
        [*train_list, *val_list],
        out / "crops",
        scale=settings.scale,
        size=settings.crop_size,
        jitter=settings.crop_jitter,
        seed=config.crop_seed,
    )
    cropped = set(list_preprocessed(crops))
    crop_train = [case_id for case_id in train_list if case_id in cropped]
    crop_val = [case_id for case_id in val_list if case_id in cropped]
    segmenter = train(crops, out / "segmenter", config.training, crop_train, crop_val, progress=progress)
    seconds = time.perf_counter() - started
    record = {
        "status": "complete",
        "train_ids": train_list,
        "val_ids": val_list,
        "detector": detector_record,
        "segmenter": {
            "train_ids": crop_train,
            "val_ids": crop_val,
            "best_epoch": segmenter.best_epoch,
            "best_val_dice": segmenter.best_val_dice,
        },
        "presence": None if presence is None else presence["result"],
        "last_call_seconds": seconds,
    }
    atomic_write_text(out / RECORD_FILENAME, json.dumps(json_safe(record), indent=1) + "\n")
    return CascadeTrainingResult(
        out=out,
        detector=detector,
        segmenter=segmenter,
        presence=presence,
        num_crop_train_cases=len(crop_train),
        num_crop_val_cases=len(crop_val),
        seconds=seconds,
    )


def cascade_settings(folder: Path) -> CascadeExperimentConfig:
    """The cascade settings of a trained cascade folder (its ``cascade_training.yaml``), or of a cascade
    cross-validation's fold folder without one (the parent's ``cascade.yaml``).

    Raises:
        FileNotFoundError: the folder is neither.
        ValueError: ``folder`` is a whole cascade cross-validation folder (one of its folds must be named).
    """
    folder = Path(folder)
    own = folder / CONFIG_FILENAME
    if own.is_file():
        return load_config(CascadeTrainingConfig, own).cascade
    if (folder / "detector").is_dir() and (folder.parent / CASCADE_FILENAME).is_file():
        return load_config(CascadeExperimentConfig, folder.parent / CASCADE_FILENAME)
    if (folder / CASCADE_FILENAME).is_file():
        folds = sorted(path.name for path in folder.glob("fold_*") if path.is_dir())
        raise ValueError(
            f"{folder}: a cascade cross-validation folder; give one of its fold folders ({', '.join(folds) or 'none'})"
        )
    raise FileNotFoundError(
        f"{folder}: not a trained cascade (no {CONFIG_FILENAME}; `npcseg detect cascade-train` writes one) nor a "
        f"fold of a cascade cross-validation"
    )


def load_trained_cascade(
    folder: Path,
    *,
    threshold: float | None = None,
    postprocessing: PostprocessingConfig | None = None,
    registration: str = "trained",
) -> CascadePredictor:
    """The :class:`~npcseg.cascade.predictor.CascadePredictor` of a trained cascade folder.

    Args:
        folder: a ``train_cascade`` output or a cascade cross-validation fold folder (``OUT/<row>/fold_<k>``).
        threshold: pixel probability threshold; ``None`` takes the crop segmenter run's (``training.threshold``).
        postprocessing: the 3D clean-up (default: the paper's rule, drop single-slice components).
        registration: ``trained`` or ``fast`` (:data:`npcseg.inference.predictor.REGISTRATION_CHOICES`).

    Raises:
        FileNotFoundError: not a cascade folder, or a piece is missing or unfinished.
        ValueError: the pieces disagree (pre-processing, crop size).
    """
    from npcseg.cascade.predictor import CascadePredictor
    from npcseg.inference.postprocessing import PostprocessingConfig

    folder = Path(folder)
    settings = cascade_settings(folder)
    segmenter_config = folder / "segmenter" / "config.yaml"
    if not segmenter_config.is_file():
        raise FileNotFoundError(f"{segmenter_config}: not found; the cascade's crop segmenter was not trained")
    if threshold is None:
        threshold = load_config(TrainingConfig, segmenter_config).threshold
    config = settings.prediction_config(threshold, postprocessing or PostprocessingConfig())
    presence = folder / "presence" if settings.presence_classifier else None
    return CascadePredictor(folder / "detector", folder / "segmenter", presence, config, registration=registration)
