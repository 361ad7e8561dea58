"""The detect-then-segment cascade on every slice of a patient (SeqSeg, METHODS.md method 2, "Cascade").

Per slice of a preprocessed volume (the cache grid):

1. tumour present? the presence classifier's probability, decided along z (:func:`presence.presence_decisions`);
   slices said to be tumour-free get no box and probability 0 (so the cascade is fully automatic);
2. the detector's final box on the slice;
3. the box enlarged ``scale`` times about its centre (paper 1.5), the window cut out and resized to ``crop_size``
   (:func:`crops.crop_slice`, bilinear);
4. the crop segmenter (a RANet trained on crops, :func:`crops.build_crop_cache`) -> probabilities on the crop;
5. pasted back into the slice inside the window (:func:`crops.paste_crop`; 0 outside, the maximum where something is
   already there);

then the stacked probabilities are thresholded and post-processed in 3D (:mod:`npcseg.inference.postprocessing`).
Without a presence classifier (``presence=None``) every slice goes to the detector (the paper's semi-automatic use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from npcseg.cascade.crops import crop_slice, paste_crop
from npcseg.cascade.presence import presence_decisions
from npcseg.data.dataset import channel_indices
from npcseg.detection.boxes import Box
from npcseg.inference.postprocessing import PostprocessingConfig, postprocess
from npcseg.inference.runs import SliceSegmenter


class _Detection(Protocol):
    @property
    def box(self) -> Box:
        """The final box."""
        ...


class BoxDetector(Protocol):
    """What the cascade needs from a detector (:func:`npcseg.detection.inference.load_detector`)."""

    @property
    def sequences(self) -> tuple[str, ...]:
        """Input channels, in order."""
        ...

    def detect(self, image: np.ndarray) -> _Detection | None:
        """The final box of one slice ``(C, H, W)`` (channels = ``sequences``); ``None``: no box on it."""
        ...


class SlicePresence(Protocol):
    """What the cascade needs from a presence classifier (:func:`npcseg.cascade.presence.load_presence`)."""

    @property
    def sequences(self) -> tuple[str, ...]:
        """Input channels, in order."""
        ...

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Tumour-present probabilities ``(Z,)`` of a volume ``(C, Z, H, W)`` (channels = ``sequences``)."""
        ...


DETECTOR_KINDS = ("dql", "heatmap")
"""The cascade's detectors: the deep-Q-learning agent, or the heat-map detector of a whole-slice segmenter."""


def check_detector_kind(kind: str, heatmap_threshold: float | None) -> None:
    """Refuse an unknown detector kind or a heat-map threshold outside (0, 1)."""
    if kind not in DETECTOR_KINDS:
        raise ValueError(f"detector_kind must be one of {list(DETECTOR_KINDS)}, got {kind!r}")
    if heatmap_threshold is not None and not 0 < heatmap_threshold < 1:
        raise ValueError(f"heatmap_threshold must lie in (0, 1), got {heatmap_threshold}")


def load_box_detector(folder: Path, config: CascadeConfig) -> BoxDetector:
    """The detector of a cascade's ``detector/`` folder: a detector run (``dql``) or a segmentation run
    (``heatmap``), as ``config.detector_kind`` says.

    Raises:
        FileNotFoundError: the run is missing or unfinished.
    """
    from npcseg.detection.heatmap import HeatmapDetector
    from npcseg.detection.inference import load_detector

    if config.detector_kind == "heatmap":
        return HeatmapDetector(folder, config.heatmap_threshold)
    return load_detector(folder)


@dataclass(frozen=True)
class CascadeConfig:
    """Settings of :func:`predict_cascade`."""

    scale: float = 1.5
    """The detector's box is enlarged this many times about its centre before cropping (paper 1.5)."""
    crop_size: int = 64
    """Side in pixels of the crop fed to the segmenter; must equal the crop cache's size it was trained on."""
    presence_threshold: float = 0.5
    """A slice holds tumour when the presence probability is at least this (before the z rules)."""
    presence_fill_gaps: bool = True
    """A negative slice between two positive slices is taken as positive."""
    presence_min_run: int = 2
    """Runs of fewer consecutive positive slices are dropped (1 keeps isolated slices)."""
    threshold: float = 0.5
    """Probability at or above which a pixel is tumour."""
    postprocessing: PostprocessingConfig = field(default_factory=PostprocessingConfig)
    """3D clean-up of the thresholded volume (the paper: drop components spanning a single slice)."""
    detector_kind: str = "dql"
    """Which detector the cascade's ``detector/`` folder holds (:data:`DETECTOR_KINDS`): ``dql``, the paper's
    deep-Q-learning agent; ``heatmap``, a whole-slice segmentation run whose thresholded map is boxed
    (:mod:`npcseg.detection.heatmap`; ours, the best detector on our synthetic cohort)."""
    heatmap_threshold: float | None = None
    """The heat-map detector's threshold; ``None`` takes its run's own."""

    def __post_init__(self) -> None:
        check_detector_kind(self.detector_kind, self.heatmap_threshold)
        if self.scale < 1 or self.crop_size < 1 or self.presence_min_run < 1:
            raise ValueError("scale >= 1, crop_size >= 1 and presence_min_run >= 1 are required")
        if not 0 < self.threshold < 1 or not 0 < self.presence_threshold < 1:
            raise ValueError("threshold and presence_threshold must lie in (0, 1)")


@dataclass(frozen=True, eq=False)
class CascadeResult:
    """The cascade's output for one volume, on the grid of its input.

    Attributes:
        probability: float32 ``(Z, H, W)`` tumour probabilities (0 outside the boxes and on tumour-free slices).
        mask: uint8 ``(Z, H, W)``: ``probability >= threshold`` after 3D post-processing.
        boxes: per slice the enlarged crop window (``Box``), or ``None`` where no tumour was decided.
        detections: per slice the detector's own box before enlargement, or ``None``.
        presence_probability: float ``(Z,)`` (without a presence classifier: 1 where the detector found a box, else 0).
        presence: bool ``(Z,)`` decisions after the z rules (without a classifier: where the detector found a box).
    """

    probability: np.ndarray
    mask: np.ndarray
    boxes: list[Box | None]
    detections: list[Box | None]
    presence_probability: np.ndarray
    presence: np.ndarray

    def describe(self) -> dict[str, Any]:
        """Plain data: the boxes and presence per slice."""
        return {
            "presence_probability": [float(value) for value in self.presence_probability],
            "presence": [bool(value) for value in self.presence],
            "detections": [list(box.as_tuple()) if box is not None else None for box in self.detections],
            "windows": [list(box.as_tuple()) if box is not None else None for box in self.boxes],
        }


def _channels(image_sequences: Sequence[str] | None, wanted: Sequence[str], num_channels: int) -> list[int]:
    if image_sequences is None:
        if len(wanted) != num_channels:
            raise ValueError(
                f"the image has {num_channels} channel(s) but a model takes {list(wanted)}; give image_sequences"
            )
        return list(range(num_channels))
    return channel_indices(image_sequences, wanted, "the image")


def predict_cascade(
    image: np.ndarray,
    detector: BoxDetector,
    segmenter: SliceSegmenter,
    presence: SlicePresence | None,
    config: CascadeConfig,
    *,
    image_sequences: Sequence[str] | None = None,
) -> CascadeResult:
    """Run the cascade on a preprocessed volume (see the module docstring).

    Args:
        image: float32 ``(C, Z, H, W)`` on the cache grid (normalised, padded as the models were trained).
        detector: the box detector.
        segmenter: the crop segmenter.
        presence: the presence classifier, or ``None``: every slice goes to the detector, and a slice holds tumour
            where it finds a box (for a heat-map detector, which finds none on an empty map).
        config: the settings.
        image_sequences: names of ``image``'s channels; each model takes its own by name. ``None``: the channels
            are already in every model's order.

    Returns:
        A :class:`CascadeResult`.
    """
    volume = np.asarray(image, dtype=np.float32)
    if volume.ndim != 4:
        raise ValueError(f"predict_cascade needs an image (C, Z, H, W), got shape {volume.shape}")
    num_channels, num_slices, height, width = volume.shape
    pick = {
        name: _channels(image_sequences, model.sequences, num_channels)
        for name, model in (("detector", detector), ("segmenter", segmenter), ("presence", presence))
        if model is not None
    }
    if presence is not None:
        presence_probability = np.asarray(presence.probabilities(volume[pick["presence"]]), dtype=np.float64)
        decided = presence_decisions(
            presence_probability,
            config.presence_threshold,
            fill_gaps=config.presence_fill_gaps,
            min_run=config.presence_min_run,
        )
    else:
        presence_probability = np.ones(num_slices)
        decided = np.ones(num_slices, dtype=bool)
    detections: list[Box | None] = [None] * num_slices
    windows: list[Box | None] = [None] * num_slices
    crops: list[np.ndarray] = []
    placed: list[tuple[int, Box]] = []
    for z in (int(index) for index in np.flatnonzero(decided)):
        found = detector.detect(volume[pick["detector"], z])
        if found is None:  # a detector may find nothing on a slice the presence rule kept: nothing to segment
            continue
        box = found.box
        window = box.scaled(config.scale)
        detections[z], windows[z] = box, window
        crops.append(crop_slice(volume[pick["segmenter"], z], window, config.crop_size))
        placed.append((z, window))
    if presence is None:  # no classifier: the detector's finding a box is the decision
        decided = np.array([box is not None for box in detections], dtype=bool)
        presence_probability = decided.astype(np.float64)
    probability = np.zeros((num_slices, height, width), dtype=np.float32)
    if crops:
        crop_probabilities = segmenter.probabilities(np.stack(crops))
        for crop, (index, window) in zip(crop_probabilities, placed, strict=True):
            probability[index] = np.maximum(probability[index], paste_crop(crop, window, (height, width)))
    mask = postprocess((probability >= config.threshold).astype(np.uint8), config.postprocessing)
    return CascadeResult(
        probability=probability,
        mask=mask,
        boxes=windows,
        detections=detections,
        presence_probability=presence_probability,
        presence=decided,
    )
