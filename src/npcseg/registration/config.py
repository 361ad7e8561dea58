"""Settings of the rigid T1 -> T2 co-registration (DEU pre-processing step 1) and its presets.

The DEU paper (Ye et al. 2020) registers T1 (moving) to T2 (fixed) with the Mattes mutual information metric and
a one-plus-one evolutionary optimizer, initial radius 0.004, at most 300 iterations; MATLAB's
``imregconfig('multimodal')`` supplies the rest (50 histogram bins, growth factor 1.05, epsilon 1.5e-6). That is
:meth:`RegistrationConfig.paper`. The default :class:`RegistrationConfig` keeps the metric and the optimizer but
adds what made it reliably sub-millimetre on our phantoms and synthetic cohorts (see the class docstring).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from npcseg.config import load_config_over, read_yaml

Optimizer = Literal["one_plus_one", "regular_step_gradient_descent"]
Scales = Literal["explicit", "physical_shift"]
Initialization = Literal["identity", "geometry", "moments"]
SamplingStrategy = Literal["random", "regular", "none"]
Interpolator = Literal["linear", "bspline"]
RefineOptimizer = Literal["powell", "regular_step_gradient_descent", "none"]


@dataclass(frozen=True)
class RegistrationConfig:
    """Rigid (Euler 3D: three rotations, three translations) multimodal registration settings.

    Every stage uses the Mattes mutual information metric. The default runs a coarse-to-fine pyramid with a
    regular-step gradient descent (fast and robust for the coarse alignment), then a Powell refinement on the
    finest level. Why: on full-size synthetic cases (T2 0.48 mm, T1 0.93 mm, 4 mm slices) every
    gradient-based optimizer and the (1+1)-ES stopped 0.4-1.5 mm off along the slice axis, where linear
    interpolation between 4 mm slices makes the metric's gradient unreliable; Powell's derivative-free line
    searches reached 0.3 mm. The pyramid coarsens only the fine in-plane axes of anisotropic images (a 4 mm
    slice axis is never shrunk), and the metric samples only where the images overlap
    (:attr:`overlap_margin_mm`). :meth:`paper` keeps the DEU paper's single-level (1+1)-ES.

    Measured (``npcseg synth --cases 10 --seed 1``, full size, 20 T1/T1c pairs, TRE over the T2 head): default
    mean 0.30 mm, worst case mean 0.50 mm, largest point error 0.53 mm, 11-43 s per pair; the paper preset on 8
    of those pairs: mean 0.84 mm, worst case mean 1.92 mm, largest 2.17 mm, 220-330 s per pair.
    """

    name: str = "default"
    """Name recorded in QA files (``default``, ``paper``, or your own)."""
    histogram_bins: int = 50
    """Mattes mutual information: number of joint-histogram bins per image."""
    sampling_strategy: SamplingStrategy = "random"
    """Pyramid metric sampling: ``random`` voxels, a ``regular`` lattice with random jitter, or ``none`` (all)."""
    sampling_fraction: float = 0.1
    """Fraction (0, 1] of the fixed image's voxels the metric samples on each pyramid level."""
    interpolator: Interpolator = "linear"
    """Interpolation of the moving image during registration (``bspline``: cubic, slower)."""
    optimizer: Optimizer = "regular_step_gradient_descent"
    """Pyramid optimizer: ``regular_step_gradient_descent`` or ``one_plus_one`` evolutionary (the paper's)."""
    initial_radius: float = 0.004
    """(1+1)-ES initial search radius, in scaled parameter units (radius / scale per parameter)."""
    max_iterations: int = 300
    """Maximum iterations of the pyramid optimizer per level."""
    growth_factor: float = 1.05
    """(1+1)-ES growth factor of the search radius after a success (shrink factor is growth ** -0.25)."""
    epsilon: float = 1.5e-6
    """(1+1)-ES stop when the search radius (Frobenius norm) falls below this."""
    learning_rate: float = 1.0
    """Gradient descent: initial step length in scaled parameter units (about mm with physical-shift scales)."""
    min_step: float = 1e-3
    """Gradient descent: stop when the step length falls below this."""
    relaxation_factor: float = 0.5
    """Gradient descent: step length multiplier when the gradient changes direction."""
    scales: Scales = "physical_shift"
    """Pyramid optimizer scales: SimpleITK's ``physical_shift`` estimate (for gradient descent) or
    ``explicit`` (the two values below; needed by the (1+1)-ES, which physical-shift scales stall)."""
    rotation_scale: float = 0.25
    """Explicit scale of the three rotation parameters (radians); (1+1)-ES step = radius / scale."""
    translation_scale: float = 0.004
    """Explicit scale of the three translation parameters (mm); (1+1)-ES step = radius / scale."""
    initialization: Initialization = "identity"
    """Start: ``identity`` (trust the shared scanner frame; rotation centre at the fixed image centre),
    ``geometry`` (align the image centres) or ``moments`` (align the intensity centres of mass)."""
    shrink_factors: tuple[int, ...] = (4, 2)
    """Pyramid levels, coarse to fine: target spacing = factor x the finest spacing; an axis is shrunk only
    while its spacing is below that target."""
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0)
    """Gaussian smoothing (mm) of both images on each pyramid level, along the shrunk axes only."""
    match_moving_resolution: bool = True
    """The finest spacing is the coarser of the two images' finest spacings: the fixed image is never sampled
    finer than the moving one (a 0.48 mm T2 is block-averaged to 0.96 mm against a 0.93 mm T1)."""
    overlap_margin_mm: float = 4.0
    """At each stage, sample only fixed voxels that the current transform maps at least this far inside the
    moving image (0: sample everywhere), so that the sample set does not change as the transform moves."""
    refine: RefineOptimizer = "powell"
    """Refinement on the finest level after the pyramid: ``powell`` (derivative-free line searches),
    ``regular_step_gradient_descent``, or ``none``."""
    refine_step: float = 1.0
    """Refinement: Powell's initial line-search step / gradient descent's learning rate (scaled units, ~mm)."""
    refine_tolerance: float = 0.01
    """Refinement: Powell's step tolerance / gradient descent's minimum step (scaled units, ~mm)."""
    refine_max_iterations: int = 10
    """Refinement: Powell's outer iterations (6 line searches each) / gradient descent's iterations."""
    refine_sampling_fraction: float = 0.2
    """Refinement: metric sampling fraction on a regular lattice (fixed per run: a steady metric)."""
    seed: int = 1
    """Seed of the metric sampling and of the (1+1)-ES (passed to SimpleITK as seed + 1; 0 there is 'clock')."""
    num_threads: int = 1
    """Threads of one registration; 0 uses SimpleITK's global default (results are reproducible per count)."""

    def __post_init__(self) -> None:
        if self.histogram_bins < 4:
            raise ValueError(f"histogram_bins must be >= 4, got {self.histogram_bins}")
        for field_name in ("sampling_fraction", "refine_sampling_fraction"):
            value = getattr(self, field_name)
            if not 0 < value <= 1:
                raise ValueError(f"{field_name} must be in (0, 1], got {value}")
        for field_name in (
            "initial_radius",
            "growth_factor",
            "epsilon",
            "learning_rate",
            "min_step",
            "refine_step",
            "refine_tolerance",
        ):
            if getattr(self, field_name) <= 0:
                raise ValueError(f"{field_name} must be positive, got {getattr(self, field_name)}")
        if self.rotation_scale <= 0 or self.translation_scale <= 0:
            raise ValueError("rotation_scale and translation_scale must be positive")
        if not 0 < self.relaxation_factor < 1:
            raise ValueError(f"relaxation_factor must be in (0, 1), got {self.relaxation_factor}")
        if self.max_iterations < 1 or self.refine_max_iterations < 1:
            raise ValueError("max_iterations and refine_max_iterations must be >= 1")
        if not self.shrink_factors or any(factor < 1 for factor in self.shrink_factors):
            raise ValueError(f"shrink_factors must be a non-empty list of integers >= 1, got {self.shrink_factors}")
        if len(self.smoothing_sigmas_mm) != len(self.shrink_factors):
            raise ValueError(
                f"smoothing_sigmas_mm has {len(self.smoothing_sigmas_mm)} values but shrink_factors has "
                f"{len(self.shrink_factors)}; give one per pyramid level"
            )
        if any(sigma < 0 for sigma in self.smoothing_sigmas_mm):
            raise ValueError(f"smoothing_sigmas_mm must be >= 0, got {self.smoothing_sigmas_mm}")
        if self.overlap_margin_mm < 0:
            raise ValueError(f"overlap_margin_mm must be >= 0, got {self.overlap_margin_mm}")
        if self.seed < 0 or self.num_threads < 0:
            raise ValueError("seed and num_threads must be >= 0")

    @classmethod
    def paper(cls) -> RegistrationConfig:
        """The DEU paper's settings: Mattes MI (50 bins), (1+1)-ES radius 0.004, 300 iterations, growth 1.05,
        epsilon 1.5e-6, centred (geometry) initialisation, one full-resolution level, no refinement.

        The paper does not give optimizer scales or metric sampling; we use explicit scales (0.25 rotations,
        0.004 translations: SimpleITK's physical-shift scales stall the (1+1)-ES) and 10 % random sampling.
        """
        return cls(
            name="paper",
            optimizer="one_plus_one",
            scales="explicit",
            initialization="geometry",
            match_moving_resolution=False,
            overlap_margin_mm=0.0,
            shrink_factors=(1,),
            smoothing_sigmas_mm=(0.0,),
            refine="none",
        )

    def with_changes(self, **changes: Any) -> RegistrationConfig:
        """A copy with some fields replaced (validated)."""
        return dataclasses.replace(self, **changes)


PRESETS: tuple[str, ...] = ("default", "paper")
"""Names accepted by :func:`preset`."""


def preset(name: str) -> RegistrationConfig:
    """The named preset: ``default`` (reliable sub-millimetre) or ``paper`` (the DEU paper's exact settings)."""
    if name == "default":
        return RegistrationConfig()
    if name == "paper":
        return RegistrationConfig.paper()
    raise ValueError(f"unknown registration preset {name!r}; use one of {list(PRESETS)}")


def load_registration_config(path: Path, base: RegistrationConfig | None = None) -> RegistrationConfig:
    """Read a YAML file of (some) :class:`RegistrationConfig` fields on top of ``base`` (default preset).

    Unknown keys and wrongly typed values are ``ValueError``s naming the file and the key. A file without a
    ``name`` records ``custom`` (or ``<base name>+custom``) in the QA files.
    """
    base = base if base is not None else RegistrationConfig()
    loaded = load_config_over(base, path)
    if "name" not in (read_yaml(path) or {}) and loaded != base:
        loaded = dataclasses.replace(loaded, name=f"{base.name}+custom")
    return loaded
