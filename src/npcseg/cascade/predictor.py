"""The cascade on raw cases: pre-process as the detector was trained, run the cascade, back onto the T2 grid.

:class:`CascadePredictor` has the interface of :class:`npcseg.inference.predictor.Predictor` that
:func:`npcseg.inference.cohort.predict_cohort` uses (``describe``, ``check_case``, ``predict_case`` returning a
:class:`~npcseg.inference.predictor.CasePrediction`, ``registration``), so a cohort is predicted, skipped and recorded
the same way. A raw case goes through the detector run's ``preprocessing.yaml`` (register, resample, normalise, pad /
crop; the presence run must have been trained on the same pre-processing, the crop segmenter on crops of it), then
:func:`npcseg.cascade.predict.predict_cascade` on every slice, then
:func:`npcseg.preprocessing.pipeline.to_original_grid` (linear), the threshold and the 3D post-processing.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from npcseg.cascade.predict import CascadeConfig, CascadeResult, load_box_detector, predict_cascade
from npcseg.cascade.presence import load_presence
from npcseg.config import config_differences, config_to_dict, load_config
from npcseg.inference.postprocessing import PostprocessingConfig, postprocess
from npcseg.inference.predictor import CasePrediction, prediction_preprocessing, prediction_registration
from npcseg.inference.runs import load_slice_segmenter
from npcseg.io.cohort import Case
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.preprocessing.pipeline import preprocess_case, to_original_grid

PREPROCESSING_FILENAME = "preprocessing.yaml"


def _preprocessing(run_dir: Path) -> PreprocessingConfig:
    path = Path(run_dir) / PREPROCESSING_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; the run does not say how its inputs were pre-processed")
    return load_config(PreprocessingConfig, path)


def _require_same(first: PreprocessingConfig, second: PreprocessingConfig, what: str) -> None:
    changes = config_differences(config_to_dict(first), config_to_dict(second), arrow="vs")
    if changes:
        raise ValueError(f"the {what} was trained on other pre-processing than the detector ({'; '.join(changes)})")


class CascadePredictor:
    """Detector + crop segmenter + presence classifier run folders as one predictor (module docstring).

    Args:
        detector_dir: a finished detector run (``npcseg detect train``).
        segmenter_dir: a training run on a crop cache (:func:`npcseg.cascade.crops.build_crop_cache`).
        presence_dir: a presence classifier run (:func:`npcseg.cascade.presence.train_presence`), or ``None``: a
            slice holds tumour where the detector finds a box (a heat-map detector's).
        config: cascade settings; its ``crop_size`` must be the segmenter's crop size.
        registration: ``trained`` or ``fast`` (:data:`npcseg.inference.predictor.REGISTRATION_CHOICES`).

    Raises:
        FileNotFoundError: a run folder or one of its files is missing.
        ValueError: the runs were trained on different pre-processing, or the crop size differs.
    """

    tta_flip = False

    def __init__(
        self,
        detector_dir: Path,
        segmenter_dir: Path,
        presence_dir: Path | None,
        config: CascadeConfig,
        *,
        registration: str = "trained",
    ) -> None:
        pieces = (detector_dir, segmenter_dir) if presence_dir is None else (detector_dir, segmenter_dir, presence_dir)
        self.run_dirs = tuple(Path(piece) for piece in pieces)
        self.detector = load_box_detector(self.run_dirs[0], config)
        self.segmenter = load_slice_segmenter(self.run_dirs[1])[0]
        self.presence = None if presence_dir is None else load_presence(self.run_dirs[2])
        self.preprocessing = _preprocessing(self.run_dirs[0])
        crops = _preprocessing(self.run_dirs[1])
        if crops.slice_size != config.crop_size:
            raise ValueError(
                f"{segmenter_dir}: the segmenter was trained on {crops.slice_size} x {crops.slice_size} crops, "
                f"but crop_size is {config.crop_size}"
            )
        _require_same(self.preprocessing, crops.with_changes(slice_size=self.preprocessing.slice_size), "segmenter")
        if presence_dir is not None:
            _require_same(self.preprocessing, _preprocessing(self.run_dirs[2]), "presence classifier")
        self.config = config
        self.threshold = config.threshold
        self.postprocessing = config.postprocessing
        self.registration = registration
        self.sequences = tuple(
            dict.fromkeys(
                (
                    *self.detector.sequences,
                    *self.segmenter.sequences,
                    *(self.presence.sequences if self.presence else ()),
                )
            )
        )
        prediction_registration(self.preprocessing.registration, registration)  # an unknown choice fails here

    @property
    def prediction_preprocessing(self) -> PreprocessingConfig:
        """The detector's pre-processing restricted to the sequences the models take (as ``Predictor``'s)."""
        return prediction_preprocessing(self.preprocessing, self.sequences, self.registration)

    def describe(self) -> dict[str, Any]:
        """Plain data for ``predict.json`` (the keys ``predict_cohort`` reads, plus the cascade's settings)."""
        detector_file = "checkpoint_best.pt" if self.config.detector_kind == "heatmap" else "detector.pt"
        checkpoints = (detector_file, "checkpoint_best.pt", "checkpoint_best.pt")[: len(self.run_dirs)]
        return {
            "method": "seqseg",
            "runs": [
                {"run_dir": str(run.resolve()), "checkpoint": str((run / name).resolve())}
                for run, name in zip(self.run_dirs, checkpoints, strict=True)
            ],
            "sequences": list(self.sequences),
            "threshold": self.threshold,
            "tta_flip": False,
            "postprocessing": config_to_dict(self.postprocessing),
            "cascade": config_to_dict(self.config),
            "registration": self.registration,
            "preprocessing": config_to_dict(self.preprocessing),
        }

    def check_case(self, case: Case) -> None:
        """Raise ``FileNotFoundError`` naming the case and sequence when a needed sequence is missing."""
        required = self.prediction_preprocessing.required_sequences
        missing = [sequence for sequence in required if sequence not in case.images]
        if missing:
            raise FileNotFoundError(
                f"case {case.case_id} ({case.folder}): missing sequence(s) {missing}; the cascade needs "
                f"{list(required)}, present: {sorted(case.images) or 'none'}"
            )

    def predict_case(self, case: Case, transforms: dict[str, sitk.Transform] | None = None) -> CasePrediction:
        """Segment one raw case; the mask lies exactly on the case's original T2 grid (see :meth:`predict`)."""
        return self.predict(case, transforms)[0]

    def predict(
        self, case: Case, transforms: dict[str, sitk.Transform] | None = None
    ) -> tuple[CasePrediction, CascadeResult]:
        """The case's prediction and the cascade's boxes and presence per slice (on the pre-processed grid)."""
        self.check_case(case)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        preprocessed = preprocess_case(dataclasses.replace(case, label=None), self.prediction_preprocessing, transforms)
        seconds["preprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        result = predict_cascade(
            preprocessed.image,
            self.detector,
            self.segmenter,
            self.presence,
            self.config,
            image_sequences=preprocessed.record["sequences"],
        )
        seconds["network"] = time.perf_counter() - start
        start = time.perf_counter()
        probability = to_original_grid(result.probability, preprocessed.record, is_mask=False)
        foreground = (sitk.GetArrayViewFromImage(probability) >= self.threshold).astype(np.uint8)
        mask = sitk.GetImageFromArray(postprocess(foreground, self.postprocessing))
        mask.CopyInformation(probability)
        seconds["postprocess"] = time.perf_counter() - start
        seconds["total"] = sum(seconds.values())
        prediction = CasePrediction(
            case_id=case.case_id, mask=mask, probability=probability, seconds=seconds, record=preprocessed.record
        )
        return prediction, result


def load_cascade_predictor(
    detector_dir: Path,
    segmenter_dir: Path,
    presence_dir: Path | None,
    *,
    scale: float = 1.5,
    presence_threshold: float = 0.5,
    threshold: float | None = None,
    postprocessing: PostprocessingConfig | None = None,
    registration: str = "trained",
) -> CascadePredictor:
    """A :class:`CascadePredictor` whose crop size comes from the segmenter run (its crop cache's slice size) and
    whose threshold is the segmenter run's unless given; the presence z rules are :class:`CascadeConfig`'s."""
    from npcseg.inference.runs import read_run

    run, _ = read_run(Path(segmenter_dir))
    config = CascadeConfig(
        scale=scale,
        crop_size=run.preprocessing.slice_size,
        presence_threshold=presence_threshold,
        threshold=run.threshold if threshold is None else threshold,
        postprocessing=postprocessing if postprocessing is not None else PostprocessingConfig(),
    )
    return CascadePredictor(detector_dir, segmenter_dir, presence_dir, config, registration=registration)
