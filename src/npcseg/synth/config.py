"""Settings of the synthetic NPC MRI cohort generator.

The defaults follow the DEU paper's acquisition (Ye et al. 2020): T2-weighted 0.48 x 0.48 x 4 mm on a 512 x
512 matrix, T1-weighted 0.93 x 0.93 x 4 mm on a 256 x 256 matrix, 25 or 45 slices. :func:`small_config` is the
preset for tests and the demo: the same field of view sampled coarsely, so a case renders in a fraction of a
second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

SizePreset = Literal["full", "small"]


@dataclass(frozen=True)
class SynthConfig:
    """Acquisition, anatomy and lesion settings; every case of a cohort shares them.

    Lengths are in mm, angles in degrees, intensities relative to the T1 signal of fat (1.0) before the
    per-case intensity scale.
    """

    t2_matrix: int = 512
    """T2 in-plane matrix (voxels per row and column)."""
    t2_spacing_mm: float = 0.48
    """T2 in-plane voxel size."""
    t1_matrix: int = 256
    """T1 and T1c in-plane matrix."""
    t1_spacing_mm: float = 0.93
    """T1 and T1c in-plane voxel size."""
    slice_thickness_mm: float = 4.0
    """Slice spacing of every sequence (contiguous slices)."""
    num_slices_range: tuple[int, int] = (20, 45)
    """Inclusive range of the number of slices per case (drawn uniformly); T1 and T1c get the same number."""
    fov_offset_mm: float = 8.0
    """Largest in-plane shift of each series' field of view centre from the head centre."""
    slice_offset_mm: float = 2.0
    """Largest shift of the T1 / T1c slice positions against the T2 slices (z-coverage stays roughly the
    same)."""
    misalignment_mm: float = 5.0
    """Largest length of the translation of the true T2 -> T1 rigid transform (patient motion between
    series)."""
    misalignment_deg: float = 5.0
    """Largest rotation angle of the true T2 -> T1 rigid transform."""
    t1c_extra_misalignment_mm: float = 1.0
    """Largest extra translation of T1c against T1 (T1c gets its own small motion on top of T1's)."""
    t1c_extra_misalignment_deg: float = 1.0
    """Largest extra rotation of T1c against T1."""
    oblique_max_deg: float = 0.0
    """Largest tilt of the acquisition planes of all series (0: T2 direction is the identity)."""
    noise_fraction: float = 0.025
    """Standard deviation of the Gaussian noise in each channel (Rician magnitude) relative to the fat
    signal."""
    bias_strength: float = 0.2
    """Largest deviation of the multiplicative bias field from 1 (a smooth field, 0.2 gives 0.8-1.2)."""
    texture_fraction: float = 0.05
    """Standard deviation of the mild multiplicative tissue texture."""
    intensity_scale_range: tuple[float, float] = (600.0, 1400.0)
    """Range of the per-case, per-sequence intensity scale (stored values are rounded to int16)."""
    tumour_area_fraction_range: tuple[float, float] = (0.005, 0.03)
    """Range of the primary tumour's largest cross-section as a fraction of the T2 slice area."""
    tumour_height_mm_range: tuple[float, float] = (16.0, 48.0)
    """Range of the primary tumour's cranio-caudal extent."""
    num_metastatic_nodes_range: tuple[int, int] = (0, 3)
    """Inclusive range of metastatic (GTV) lymph nodes per case."""
    num_normal_nodes_range: tuple[int, int] = (3, 8)
    """Inclusive range of small normal lymph nodes per case (not part of the label)."""
    necrosis_probability: float = 0.4
    """Probability that a metastatic node has a necrotic centre."""
    num_previews: int = 3
    """Number of cases (the first ones) that get a PNG preview."""
    preview_slices: int = 4
    """Axial slices shown per preview (spread over the tumour)."""
    compress: bool = True
    """Write gzip-compressed NIfTI (``.nii.gz``; compression only changes the file size, never the values)."""

    def __post_init__(self) -> None:
        for name in ("t2_matrix", "t1_matrix"):
            if getattr(self, name) < 16:
                raise ValueError(f"{name} must be at least 16, got {getattr(self, name)}")
        for name in ("t2_spacing_mm", "t1_spacing_mm", "slice_thickness_mm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        low, high = self.num_slices_range
        if not 4 <= low <= high:
            raise ValueError(f"num_slices_range must satisfy 4 <= low <= high, got {self.num_slices_range}")
        area_low, area_high = self.tumour_area_fraction_range
        if not 0 < area_low <= area_high < 0.2:
            raise ValueError(f"tumour_area_fraction_range must lie in (0, 0.2), got {self.tumour_area_fraction_range}")
        height_low, height_high = self.tumour_height_mm_range
        if not 0 < height_low <= height_high:
            raise ValueError(f"tumour_height_mm_range must be positive and ordered, got {self.tumour_height_mm_range}")
        for name in ("num_metastatic_nodes_range", "num_normal_nodes_range", "intensity_scale_range"):
            low_value, high_value = getattr(self, name)
            if not 0 <= low_value <= high_value:
                raise ValueError(f"{name} must satisfy 0 <= low <= high, got {getattr(self, name)}")
        for name in (
            "misalignment_mm",
            "misalignment_deg",
            "noise_fraction",
            "bias_strength",
            "texture_fraction",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.bias_strength >= 1:
            raise ValueError(f"bias_strength must be below 1, got {self.bias_strength}")
        if not 0 <= self.necrosis_probability <= 1:
            raise ValueError(f"necrosis_probability must lie in [0, 1], got {self.necrosis_probability}")


def small_config(**overrides: object) -> SynthConfig:
    """The small, fast preset: the default field of view on a T2 128 x 128 / T1 64 x 64 matrix, 12 slices.

    Args:
        **overrides: further fields to change.
    """
    settings: dict[str, object] = {
        "t2_matrix": 128,
        "t2_spacing_mm": 0.48 * 4,
        "t1_matrix": 64,
        "t1_spacing_mm": 0.93 * 4,
        "num_slices_range": (12, 12),
        "tumour_height_mm_range": (16.0, 32.0),
    }
    settings.update(overrides)
    return dataclasses.replace(SynthConfig(), **settings)  # type: ignore[arg-type]


def preset_config(size: SizePreset) -> SynthConfig:
    """The config of a size preset: ``full`` (the paper's acquisition) or ``small`` (tests, demo)."""
    if size == "full":
        return SynthConfig()
    if size == "small":
        return small_config()
    raise ValueError(f"unknown size preset {size!r}; use 'full' or 'small'")
