"""Settings of the pre-processing stage (METHODS.md method 1, pre-processing steps 1-4) and its presets.

Every case is brought onto one grid per case: the reference sequence's (T2's) slices, direction and field of
view, resampled in-plane (DEU: to T1's in-plane resolution, i.e. T2's in-plane size about halved). Every
sequence is resampled onto it (the moving ones through their rigid registration to the reference), the label
too, then each volume is normalised and each slice zero-padded / cropped to ``slice_size`` x ``slice_size``.

The slices are always the reference sequence's slices, at their spacing and positions: both networks are 2D
and the gold standard is drawn on T2's slices, so no setting changes them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from npcseg.config import load_config_over
from npcseg.io.cohort import SEQUENCES
from npcseg.registration.config import RegistrationConfig

LabelResampling = Literal["linear_threshold", "nearest"]
Normalization = Literal["minmax", "percentile", "dataset_max", "none"]
RegistrationSource = Literal["register", "precomputed", "identity"]
FIT = "fit"
"""``spacing_from`` value: resize the reference field of view so its larger side spans S voxels."""


@dataclass(frozen=True)
class PreprocessingConfig:
    """Pre-processing settings; the defaults are the DEU paper's (:meth:`deu`).

    Label resampling defaults to ``linear_threshold``: the binary label is interpolated linearly as 0/1 floats
    and a voxel is foreground where the interpolated value is >= 0.5. ``nearest`` is ill-posed for DEU's
    factor-2 downsampling: every new voxel centre lies exactly on the corner shared by four T2 voxels, so
    nearest-neighbour picks one of them by a rounding tie (a systematic quarter-voxel shift);
    ``linear_threshold`` is symmetric (a new voxel is foreground when at least two of its four T2 voxels are),
    keeps the area and is smooth for non-integer factors.
    """

    sequences: tuple[str, ...] = ("t1", "t2")
    """Sequences to stack as channels, in channel order (each one of ``t1``, ``t2``, ``t1c``)."""
    reference_sequence: str = "t2"
    """The fixed sequence: its grid (slices, direction, field of view) is the output grid; label on it."""
    target_spacing_yx_mm: tuple[float, float] | None = None
    """Explicit in-plane spacing (y, x) in mm of the output grid; ``None`` takes it from ``spacing_from``."""
    spacing_from: str = "t1"
    """With no explicit spacing: the sequence whose in-plane spacing the output takes (per case; DEU: ``t1``),
    or ``fit`` (the reference field of view resized so its larger side spans ``slice_size`` voxels)."""
    label_resampling: LabelResampling = "linear_threshold"
    """How the label reaches the output grid: ``linear_threshold`` (default, see above) or ``nearest``."""
    normalization: Normalization = "minmax"
    """Intensities: per volume ``minmax`` to [0, 1] or ``percentile`` (clip to the percentiles, then min-max);
    ``dataset_max`` (divide by the sequence's maximum over the dataset, SeqSeg) or ``none``."""
    dataset_max: dict[str, float] | None = None
    """``dataset_max`` normalisation: sequence -> its maximum over the training dataset. ``None`` until
    ``npcseg preprocess`` measures it over the cohort and records it in the cache's config (which travels with
    trained runs, so new patients are scaled by the training maxima)."""
    percentile_low: float = 0.5
    """Lower clipping percentile (``percentile`` normalisation only), in [0, 100)."""
    percentile_high: float = 99.5
    """Upper clipping percentile (``percentile`` normalisation only), in (0, 100], above the lower."""
    slice_size: int = 256
    """Side S of the square output slices in voxels (centred zero-pad / crop); DEU 256, SeqSeg 384."""
    registration_source: RegistrationSource = "register"
    """Where the moving sequences' transforms come from: ``register`` (rigid registration to the reference
    with ``registration``), ``precomputed`` (``npcseg register`` outputs, given as a folder) or ``identity``
    (already co-registered)."""
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    """Rigid registration settings used when ``registration_source`` is ``register``."""

    def __post_init__(self) -> None:
        if not self.sequences:
            raise ValueError("sequences must name at least one sequence")
        unknown = [sequence for sequence in self.sequences if sequence not in SEQUENCES]
        if unknown:
            raise ValueError(f"unknown sequence(s) {unknown}; use names from {list(SEQUENCES)}")
        if len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must not repeat, got {list(self.sequences)}")
        if self.reference_sequence not in SEQUENCES:
            raise ValueError(f"reference_sequence {self.reference_sequence!r} is not one of {list(SEQUENCES)}")
        if self.target_spacing_yx_mm is not None and not all(
            math.isfinite(value) and value > 0 for value in self.target_spacing_yx_mm
        ):
            raise ValueError(f"target_spacing_yx_mm must be positive (y, x) in mm, got {self.target_spacing_yx_mm}")
        if self.spacing_from != FIT and self.spacing_from not in SEQUENCES:
            raise ValueError(f"spacing_from {self.spacing_from!r} must be '{FIT}' or one of {list(SEQUENCES)}")
        if not 0.0 <= self.percentile_low < self.percentile_high <= 100.0:
            raise ValueError(
                f"percentiles must satisfy 0 <= percentile_low < percentile_high <= 100, got "
                f"{self.percentile_low}, {self.percentile_high}"
            )
        if self.dataset_max is not None:
            missing = [sequence for sequence in self.sequences if sequence not in self.dataset_max]
            bad = {key: value for key, value in self.dataset_max.items() if not (math.isfinite(value) and value > 0)}
            if missing or bad:
                raise ValueError(f"dataset_max needs a positive value for every sequence; missing {missing}, bad {bad}")
        if self.slice_size < 1:
            raise ValueError(f"slice_size must be a positive number of voxels, got {self.slice_size}")

    @property
    def moving_sequences(self) -> tuple[str, ...]:
        """The sequences other than the reference, which are registered to it."""
        return tuple(sequence for sequence in self.sequences if sequence != self.reference_sequence)

    @property
    def required_sequences(self) -> tuple[str, ...]:
        """Every sequence a case must have: the channels, the reference and the spacing source."""
        needed = [*self.sequences, self.reference_sequence]
        if self.target_spacing_yx_mm is None and self.spacing_from != FIT:
            needed.append(self.spacing_from)
        return tuple(dict.fromkeys(needed))

    @classmethod
    def deu(cls) -> PreprocessingConfig:
        """DEU (Ye et al. 2020): T1 + T2, T2 reference at T1's in-plane spacing, min-max, 256 x 256."""
        return cls()

    @classmethod
    def seqseg(cls) -> PreprocessingConfig:
        """SeqSeg (Tao et al. 2022): T1, T1c, T2 channels, 384 x 384 slices.

        The paper resizes images to 384 x 384, which ``spacing_from='fit'`` does (the T2 field of view spans
        384 voxels). It rescales each channel by its maximum over the whole dataset (``dataset_max``, measured
        by ``npcseg preprocess`` over the cohort being pre-processed).
        """
        return cls(sequences=("t1", "t1c", "t2"), spacing_from=FIT, slice_size=384, normalization="dataset_max")

    def with_changes(self, **changes: object) -> PreprocessingConfig:
        """A copy with some fields replaced (validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PRESETS: tuple[str, ...] = ("deu", "seqseg")
"""Names accepted by :func:`preset`."""


def preset(name: str) -> PreprocessingConfig:
    """The named preset: ``deu`` or ``seqseg``."""
    if name == "deu":
        return PreprocessingConfig.deu()
    if name == "seqseg":
        return PreprocessingConfig.seqseg()
    raise ValueError(f"unknown preprocessing preset {name!r}; use one of {list(PRESETS)}")


def load_preprocessing_config(path: Path, base: PreprocessingConfig | None = None) -> PreprocessingConfig:
    """Read a YAML file of (some) :class:`PreprocessingConfig` fields on top of ``base`` (default: DEU).

    The nested ``registration`` section merges key by key with the base's. Unknown keys and wrongly typed
    values are ``ValueError``s naming the file and the key.
    """
    return load_config_over(base if base is not None else PreprocessingConfig(), path)
