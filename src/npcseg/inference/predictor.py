"""Predicting GTV masks with one trained network or an ensemble of them.

:func:`load_predictor` loads the networks of one or more training runs (a cross-validation folder stands for
all its folds). :meth:`Predictor.predict_case` takes a raw case (sequences on their own grids) through the same
pre-processing the networks were trained on (the runs' ``preprocessing.yaml``: register, resample, normalise,
pad / crop), runs the networks slice by slice, brings the probabilities back onto the case's original T2 grid
(:func:`npcseg.preprocessing.pipeline.to_original_grid`), thresholds them and post-processes the mask in 3D
(:mod:`npcseg.inference.postprocessing`).

Ensembling and test-time augmentation average probabilities (after the sigmoid), never logits or masks: with
flip TTA each network also sees every slice mirrored left-right (along x), and its prediction is mirrored back
before averaging. Every (network, flip) pair has equal weight.

Speed (``benchmarks/profile_predict.py``, narrow DEU, one thread, 256 x 256 slices, CPU seconds per slice in one
run): batch 8 in the default memory layout 0.127, batch 1 0.080, batch 2 0.079; in the ``channels_last`` layout
batch 1 0.060, batch 2 0.061, batch 8 0.081. Hence the defaults: ``channels_last`` and batch 2 (about 2x faster
than batch 8 contiguous; the large batches' activations no longer fit the CPU caches). Registration is most of a
patient's time; ``registration="fast"`` registers with a cheaper refinement (see :data:`REGISTRATION_CHOICES`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from npcseg.config import config_differences, config_to_dict
from npcseg.inference.postprocessing import PostprocessingConfig, postprocess
from npcseg.inference.runs import TrainedRun, build_network, expand_model_dirs, read_run
from npcseg.io.cohort import Case
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.preprocessing.pipeline import PreprocessedCase, preprocess_case, to_original_grid
from npcseg.registration.config import RegistrationConfig

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2
"""Slices per forward pass by default (see the module docstring for the measurements)."""
REGISTRATION_CHOICES: tuple[str, ...] = ("trained", "fast")
"""How a predictor registers raw cases: ``trained`` (the runs' own settings) or ``fast`` (the same, but the Powell
refinement, most of the time of the default registration, makes one pass over its six directions on 10 % of the
voxels instead of up to ten passes on 20 %). Measured on six full-size synthetic T1 -> T2 pairs (seeds 1 and 7,
three patients each; CPU seconds, one thread; ``benchmarks/profile_predict.py --registration``): 0.44-0.66x the
default's CPU time (mean 0.57x); mean TRE over the head 0.254 mm -> 0.265 mm (per patient 0.257 / 0.162 / 0.353 /
0.289 / 0.371 / 0.091 -> 0.326 / 0.175 / 0.279 / 0.321 / 0.434 / 0.054 mm). Not the default: a prediction then
registers differently from the runs' training cache."""


def prediction_registration(trained: RegistrationConfig, choice: str) -> RegistrationConfig:
    """The registration settings of a :data:`REGISTRATION_CHOICES` entry, given the runs' own ``trained`` ones."""
    if choice == "trained":
        return trained
    if choice == "fast":
        return trained.with_changes(
            name=f"{trained.name}+fast",
            refine_sampling_fraction=min(trained.refine_sampling_fraction, 0.1),
            refine_max_iterations=1,
        )
    raise ValueError(f"unknown registration choice {choice!r}; use one of {list(REGISTRATION_CHOICES)}")


def prediction_preprocessing(
    trained: PreprocessingConfig, sequences: tuple[str, ...], registration: str
) -> PreprocessingConfig:
    """The pre-processing of a raw case for models trained with ``trained``: restricted to the ``sequences`` they
    take, registering where training read precomputed transforms, with the ``registration`` choice of predict."""
    config = trained
    if set(config.sequences) != set(sequences):
        config = config.with_changes(sequences=tuple(s for s in config.sequences if s in sequences))
    if config.registration_source == "precomputed":
        config = config.with_changes(registration_source="register")
    if registration != "trained":
        config = config.with_changes(registration=prediction_registration(config.registration, registration))
    return config


@dataclass(frozen=True, eq=False)
class CasePrediction:
    """The prediction of one case on its original reference (T2) grid.

    Attributes:
        case_id: the case.
        mask: uint8 0 / 1 image with exactly the T2 image's size, spacing, origin and direction.
        probability: float32 image of the ensemble's foreground probability on the same grid (before the
            threshold and post-processing).
        seconds: wall-clock seconds per stage: ``register`` (rigid registration of the moving sequences),
            ``preprocess`` (reading, resampling, normalisation, pad / crop), ``network``, ``to_original``
            (back onto the T2 grid), ``postprocess`` (threshold and 3D clean-up), ``total``.
        record: the pre-processing record (grids, normalisation, registration quality).
    """

    case_id: str
    mask: sitk.Image
    probability: sitk.Image
    seconds: dict[str, float]
    record: dict[str, Any]

    @property
    def foreground_voxels(self) -> int:
        """Number of foreground voxels of the mask."""
        return int(np.count_nonzero(sitk.GetArrayViewFromImage(self.mask)))

    @property
    def volume_ml(self) -> float:
        """Volume of the predicted mask in millilitres."""
        return self.foreground_voxels * float(np.prod(self.mask.GetSpacing())) / 1000.0


def _common_settings(runs: list[TrainedRun]) -> tuple[PreprocessingConfig, tuple[str, ...]]:
    """The pre-processing and input sequences every run shares; ``ValueError`` naming the first disagreement."""
    first = runs[0]
    for run in runs[1:]:
        if set(run.sequences) != set(first.sequences):
            raise ValueError(
                f"cannot ensemble {first.run_dir} (sequences {list(first.sequences)}) with {run.run_dir} "
                f"(sequences {list(run.sequences)}): the runs must take the same sequences"
            )
        if run.preprocessing != first.preprocessing:
            changes = config_differences(
                config_to_dict(first.preprocessing), config_to_dict(run.preprocessing), arrow="vs"
            )
            raise ValueError(
                f"cannot ensemble {first.run_dir} with {run.run_dir}: their preprocessing.yaml differ "
                f"({'; '.join(changes)})"
            )
    return first.preprocessing, first.sequences


class Predictor:
    """An ensemble of trained 2D networks that segments cases (see the module docstring).

    Attributes:
        runs: the training runs, one network each.
        sequences: the input sequences the networks need (the first run's channel order).
        preprocessing: the pre-processing settings the networks were trained with (shared by all runs).
        threshold: probability at or above which a voxel is foreground.
        tta_flip: also predict left-right mirrored slices and average.
        postprocessing: the 3D clean-up of the thresholded mask.
        batch_size: slices per forward pass.
        channels_last: networks and inputs in the ``channels_last`` memory layout (faster convolutions on CPUs).
        registration: :data:`REGISTRATION_CHOICES` entry for raw cases.
    """

    def __init__(
        self,
        runs: list[TrainedRun],
        networks: list[nn.Module],
        *,
        threshold: float | None = None,
        tta_flip: bool = False,
        postprocessing: PostprocessingConfig | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        channels_last: bool = True,
        registration: str = "trained",
    ) -> None:
        if not runs or len(runs) != len(networks):
            raise ValueError("a predictor needs one network per run, and at least one run")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.runs = list(runs)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.networks = [
            network.eval().to(memory_format=memory_format)  # type: ignore[call-overload]  # untyped keyword
            for network in networks
        ]
        self.channels_last = channels_last
        self.preprocessing, self.sequences = _common_settings(self.runs)
        if threshold is None:
            thresholds = sorted({run.threshold for run in self.runs})
            if len(thresholds) > 1:
                raise ValueError(f"the runs use different thresholds {thresholds}; give one explicitly")
            threshold = thresholds[0]
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.threshold = float(threshold)
        self.tta_flip = tta_flip
        self.postprocessing = postprocessing if postprocessing is not None else PostprocessingConfig()
        self.batch_size = batch_size
        self.registration = registration
        prediction_registration(self.preprocessing.registration, registration)  # an unknown choice fails here

    @property
    def prediction_preprocessing(self) -> PreprocessingConfig:
        """The pre-processing applied to a raw case: the runs', restricted to the sequences the networks take.

        Normalisation and registration act on each sequence on its own, so dropping sequences the networks do not
        take changes nothing in the others. Transforms the training cache read from an ``npcseg register`` folder
        (``registration_source: precomputed``) are computed here with the same registration settings.
        """
        return prediction_preprocessing(self.preprocessing, self.sequences, self.registration)

    @property
    def required_sequences(self) -> tuple[str, ...]:
        """Every sequence a case needs: the networks' inputs, the reference and the in-plane spacing source."""
        return self.prediction_preprocessing.required_sequences

    def describe(self) -> dict[str, Any]:
        """Plain data for ``predict.json``: runs and settings."""
        return {
            "runs": [run.describe() for run in self.runs],
            "sequences": list(self.sequences),
            "required_sequences": list(self.required_sequences),
            "threshold": self.threshold,
            "tta_flip": self.tta_flip,
            "postprocessing": config_to_dict(self.postprocessing),
            "batch_size": self.batch_size,
            "channels_last": self.channels_last,
            "registration": self.registration,
            "preprocessing": config_to_dict(self.preprocessing),
        }

    def check_case(self, case: Case) -> None:
        """Check, from the file headers only, that ``case`` has every needed sequence as a 3D scalar image.

        Raises:
            FileNotFoundError: a needed sequence is missing (the message names the case and the sequence).
            ValueError: a sequence file is unreadable, not 3D, or not scalar.
        """
        missing = [sequence for sequence in self.required_sequences if sequence not in case.images]
        if missing:
            raise FileNotFoundError(
                f"case {case.case_id} ({case.folder}): missing sequence(s) {missing}; the model needs "
                f"{list(self.required_sequences)}, present: {sorted(case.images) or 'none'}"
            )
        for sequence in self.required_sequences:
            path = case.images[sequence]
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            try:
                reader.ReadImageInformation()
            except RuntimeError as error:
                raise ValueError(f"case {case.case_id}: {path}: unreadable image ({error})") from error
            if reader.GetDimension() != 3:
                raise ValueError(
                    f"case {case.case_id}: {path}: sequence '{sequence}' must be a 3D image, got "
                    f"{reader.GetDimension()}D of size {reader.GetSize()}"
                )
            if reader.GetNumberOfComponents() != 1:
                raise ValueError(
                    f"case {case.case_id}: {path}: sequence '{sequence}' must be a scalar image, got "
                    f"{reader.GetNumberOfComponents()} components per voxel"
                )

    def _inputs(self, case: PreprocessedCase) -> np.ndarray:
        """The case's image as ``(C, Z, S, S)`` float32 over every sequence of the record, checked."""
        image = np.asarray(case.image)
        record_sequences = list(case.record.get("sequences", []))
        if image.ndim != 4 or image.shape[0] != len(record_sequences):
            raise ValueError(
                f"case {case.case_id}: expected a preprocessed image (channels, slices, S, S) with one channel per "
                f"sequence {record_sequences}, got shape {image.shape}"
            )
        missing = [sequence for sequence in self.sequences if sequence not in record_sequences]
        if missing:
            raise ValueError(
                f"case {case.case_id}: the model needs sequence(s) {missing} but the preprocessed case holds only "
                f"{record_sequences}"
            )
        size = self.preprocessing.slice_size
        if image.shape[2:] != (size, size):
            raise ValueError(
                f"case {case.case_id}: slices of {image.shape[2]} x {image.shape[3]} voxels, but the model was "
                f"trained on {size} x {size} slices"
            )
        return image.astype(np.float32, copy=False)

    def predict_preprocessed(self, case: PreprocessedCase) -> np.ndarray:
        """Foreground probabilities ``(Z, S, S)`` float32 of a preprocessed case, averaged over runs and flips.

        Channels are picked by name from ``case.record['sequences']``, so a cache with more sequences (in any
        order) serves a network that takes fewer.

        Raises:
            ValueError: the case lacks a sequence the networks need, or has the wrong shape.
        """
        image = self._inputs(case)
        record_sequences = list(case.record["sequences"])
        flips = (False, True) if self.tta_flip else (False,)
        total = np.zeros(image.shape[1:], dtype=np.float64)
        with torch.inference_mode():
            for run, network in zip(self.runs, self.networks, strict=True):
                channels = [record_sequences.index(sequence) for sequence in run.sequences]
                slices = torch.from_numpy(np.ascontiguousarray(image[channels].transpose(1, 0, 2, 3)))
                for flip in flips:
                    total += self._network_probabilities(network, slices, flip)
        return (total / (len(self.networks) * len(flips))).astype(np.float32)

    def _network_probabilities(self, network: nn.Module, slices: torch.Tensor, flip: bool) -> np.ndarray:
        """Sigmoid of one network's logits for ``slices`` ``(Z, C, S, S)``, in batches; ``(Z, S, S)`` float64."""
        outputs = []
        for start in range(0, slices.shape[0], self.batch_size):
            batch = slices[start : start + self.batch_size]
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            if flip:
                batch = torch.flip(batch, dims=(-1,))
            probabilities = torch.sigmoid(network(batch))[:, 0]
            if flip:
                probabilities = torch.flip(probabilities, dims=(-1,))
            outputs.append(probabilities.to(torch.float64).numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, *slices.shape[2:]))

    def segment(self, probability: sitk.Image) -> sitk.Image:
        """The mask of a probability map: foreground where ``probability >= threshold``, then post-processed.

        Args:
            probability: float probabilities on any grid (normally the original T2 grid, from
                :func:`npcseg.preprocessing.pipeline.to_original_grid`); post-processing runs in its index space.

        Returns:
            uint8 0 / 1 mask with ``probability``'s geometry.
        """
        foreground = (sitk.GetArrayViewFromImage(probability) >= self.threshold).astype(np.uint8)
        mask = sitk.GetImageFromArray(postprocess(foreground, self.postprocessing))
        mask.CopyInformation(probability)
        return mask

    def predict_case(self, case: Case, transforms: dict[str, sitk.Transform] | None = None) -> CasePrediction:
        """Segment one raw case; the mask lies exactly on the case's original T2 grid.

        Args:
            case: the case's files (each sequence on its own grid; a label, if present, is ignored).
            transforms: per moving sequence, a precomputed transform T2 physical -> sequence physical (as written
                by ``npcseg register``); ``None`` registers as the runs' pre-processing says.

        Raises:
            FileNotFoundError: a needed sequence is missing (checked before any work; names case and sequence).
            ValueError: an image is not a 3D scalar image, or another input problem.
        """
        self.check_case(case)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        preprocessed = preprocess_case(dataclasses.replace(case, label=None), self.prediction_preprocessing, transforms)
        elapsed = time.perf_counter() - start
        registration = sum(
            float(quality.get("seconds", 0.0)) for quality in preprocessed.record.get("registration", {}).values()
        )
        seconds["register"] = registration
        seconds["preprocess"] = max(elapsed - registration, 0.0)

        start = time.perf_counter()
        probabilities = self.predict_preprocessed(preprocessed)
        seconds["network"] = time.perf_counter() - start

        start = time.perf_counter()
        probability = to_original_grid(probabilities, preprocessed.record, is_mask=False)
        seconds["to_original"] = time.perf_counter() - start

        start = time.perf_counter()
        mask = self.segment(probability)
        seconds["postprocess"] = time.perf_counter() - start
        seconds["total"] = sum(seconds.values())
        return CasePrediction(
            case_id=case.case_id, mask=mask, probability=probability, seconds=seconds, record=preprocessed.record
        )


def load_predictor(
    run_dirs: Iterable[Path],
    *,
    tta_flip: bool = False,
    postprocessing: PostprocessingConfig | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_threads: int = 0,
    threshold: float | None = None,
    channels_last: bool = True,
    registration: str = "trained",
) -> Predictor:
    """Load the networks of one or more runs as an ensemble.

    Args:
        run_dirs: training run folders and / or cross-validation folders (each stands for all its folds).
        tta_flip: also predict left-right mirrored slices and average (test-time augmentation).
        postprocessing: the 3D clean-up (default: the paper's, drop components present in one slice only).
        batch_size: slices per forward pass.
        num_threads: torch CPU threads (process-wide ``torch.set_num_threads``); 0 keeps torch's default.
        threshold: foreground probability threshold; ``None`` takes the runs' (which must agree).
        channels_last: run the networks in the ``channels_last`` memory layout.
        registration: ``trained`` (the runs' registration settings) or ``fast`` (:data:`REGISTRATION_CHOICES`).

    Returns:
        The predictor; weights come from each run's ``checkpoint_best.pt`` (``checkpoint_last.pt``, with a
        warning, when a run has no best checkpoint).

    Raises:
        FileNotFoundError: a model folder, its config, pre-processing settings or checkpoint is missing.
        ValueError: runs disagree on sequences or pre-processing, or a checkpoint does not fit its config.
    """
    if num_threads < 0:
        raise ValueError(f"num_threads must be 0 (torch default) or positive, got {num_threads}")
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    runs: list[TrainedRun] = []
    networks: list[nn.Module] = []
    for run_dir in expand_model_dirs(run_dirs):
        run, state = read_run(run_dir)
        runs.append(run)
        networks.append(build_network(run, state))
        logger.info("loaded %s (%s, %s)", run.checkpoint, run.model_name, "+".join(run.sequences))
    return Predictor(
        runs,
        networks,
        threshold=threshold,
        tta_flip=tta_flip,
        postprocessing=postprocessing,
        batch_size=batch_size,
        channels_last=channels_last,
        registration=registration,
    )
