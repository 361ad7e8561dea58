"""Rigid multimodal registration: Mattes mutual information + (1+1)-evolutionary optimizer (DEU step 1).

:func:`register_rigid` finds the Euler 3D transform that maps points of the FIXED image's physical space (T2)
to the MOVING image's physical space (T1, T1c): the convention of ITK registration and of
:func:`npcseg.registration.resample.resample_onto`, so ``resample_onto(moving, Grid.from_image(fixed),
result.transform)`` brings the moving image onto the fixed grid.

Stages, each seeded and run with a fixed number of threads so that a seed gives the same transform every time:

1. initialisation (:attr:`RegistrationConfig.initialization`), rotation centre at the fixed image's centre;
2. the main optimizer on each pyramid level, coarse to fine (:func:`pyramid_level`);
3. optionally a refinement (Powell or regular-step gradient descent) on the finest level.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from npcseg.io.volume import Grid
from npcseg.registration.config import RegistrationConfig
from npcseg.registration.tre import transform_points

logger = logging.getLogger(__name__)

MIN_LEVEL_SIZE = 24
"""Pyramid levels keep at least this many voxels along every shrunk axis (small images stay usable)."""

_SAMPLING = {
    "random": sitk.ImageRegistrationMethod.RANDOM,
    "regular": sitk.ImageRegistrationMethod.REGULAR,
    "none": sitk.ImageRegistrationMethod.NONE,
}


@dataclass(frozen=True)
class RegistrationResult:
    """The outcome of :func:`register_rigid`.

    Attributes:
        transform: Euler 3D transform mapping fixed physical points (LPS mm) to moving physical points.
        final_metric: Mattes mutual information at the end of the last stage (negative; lower is better).
        num_iterations: optimizer iterations summed over all stages.
        seconds: wall time of the whole registration.
        stop_condition: the last stage's optimizer stop condition.
        stages: one record per stage (level, image sizes, iterations, metric, stop condition).
    """

    transform: sitk.Transform
    final_metric: float
    num_iterations: int
    seconds: float
    stop_condition: str
    stages: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the QA record: metric, iterations, time, stop condition and the transform."""
        return {
            "final_metric": self.final_metric,
            "num_iterations": self.num_iterations,
            "seconds": round(self.seconds, 3),
            "stop_condition": self.stop_condition,
            "transform": describe_transform(self.transform),
            "stages": list(self.stages),
        }


def describe_transform(transform: sitk.Transform) -> dict[str, Any]:
    """Readable parameters of a rigid transform: rotation angles (degrees), translation and centre (mm)."""
    description: dict[str, Any] = {"class": transform.GetName(), "parameters": list(transform.GetParameters())}
    if hasattr(transform, "GetMatrix"):
        matrix = np.asarray(transform.GetMatrix()).reshape(3, 3)
        angle = math.degrees(math.acos(float(np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0))))
        description["rotation_angle_deg"] = angle
        description["matrix"] = list(transform.GetMatrix())
    if hasattr(transform, "GetTranslation"):
        description["translation_mm"] = list(transform.GetTranslation())
    if hasattr(transform, "GetCenter"):
        description["center_mm"] = list(transform.GetCenter())
    return description


def initial_transform(fixed: sitk.Image, moving: sitk.Image, initialization: str) -> sitk.Euler3DTransform:
    """The starting Euler 3D transform.

    Args:
        fixed: the fixed image (its physical centre is the rotation centre for ``identity``).
        moving: the moving image.
        initialization: ``identity`` (no motion: the scanner frame is shared), ``geometry`` (centre of the moving
            image's extent onto the fixed one's) or ``moments`` (intensity centres of mass).
    """
    if initialization == "identity":
        transform = sitk.Euler3DTransform()
        size = np.asarray(fixed.GetSize(), dtype=float)
        transform.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint(((size - 1.0) / 2.0).tolist()))
        return transform
    modes = {
        "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
        "moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
    }
    if initialization not in modes:
        raise ValueError(f"unknown initialization {initialization!r}; use identity, geometry or moments")
    result = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(), modes[initialization])
    return sitk.Euler3DTransform(result)


def pyramid_level(image: sitk.Image, target_spacing_mm: float, sigma_mm: float) -> sitk.Image:
    """Smooth and shrink ``image`` towards an isotropic ``target_spacing_mm``, axis by axis.

    An axis whose spacing is already at or above the target (a 4 mm slice axis) is neither smoothed nor
    shrunk; the others are smoothed with a Gaussian of ``sigma_mm`` and block-averaged by
    ``round(target / spacing)`` voxels, but never to fewer than :data:`MIN_LEVEL_SIZE` voxels along an axis.
    """
    spacing, size = image.GetSpacing(), image.GetSize()
    factors = [
        max(1, min(round(target_spacing_mm / s), n // MIN_LEVEL_SIZE)) if s < target_spacing_mm else 1
        for s, n in zip(spacing, size, strict=True)
    ]
    result = image
    if sigma_mm > 0:
        for axis, axis_spacing in enumerate(spacing):
            if axis_spacing < target_spacing_mm and image.GetSize()[axis] >= 4:
                result = sitk.RecursiveGaussian(
                    result, sigma_mm, False, sitk.RecursiveGaussianImageFilter.ZeroOrder, axis
                )
    if any(factor > 1 for factor in factors):
        result = sitk.BinShrink(result, factors)
    return result


def overlap_mask(
    fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, margin_mm: float
) -> sitk.Image | None:
    """UInt8 mask of the fixed voxels that ``transform`` maps at least ``margin_mm`` inside ``moving``.

    ``None`` when fewer than 1 % of the fixed voxels qualify (the metric then samples everywhere rather than
    almost nowhere).
    """
    fixed_grid, moving_grid = Grid.from_image(fixed), Grid.from_image(moving)
    size = fixed_grid.size_xyz
    margin_index = np.asarray([margin_mm / s for s in moving_grid.spacing_xyz])
    upper = np.asarray(moving_grid.size_xyz, dtype=float) - 1.0 - margin_index
    mask = np.zeros(fixed_grid.shape_zyx, dtype=np.uint8)
    j, i = np.meshgrid(np.arange(size[1]), np.arange(size[0]), indexing="ij")
    plane = np.stack([i.ravel(), j.ravel(), np.zeros(i.size)], axis=1).astype(float)
    for k in range(size[2]):
        plane[:, 2] = k
        index = moving_grid.physical_to_index(transform_points(transform, fixed_grid.index_to_physical(plane)))
        inside = np.all((index >= margin_index) & (index <= upper), axis=1)
        mask[k] = inside.reshape(size[1], size[0])
    if mask.mean() < 0.01:
        return None
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(fixed)
    return image


def _method(config: RegistrationConfig, sampling: str, sampling_fraction: float) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=config.histogram_bins)
    method.SetMetricSamplingStrategy(_SAMPLING[sampling])
    if sampling != "none":
        method.SetMetricSamplingPercentage(sampling_fraction, config.seed + 1)
    method.SetInterpolator(sitk.sitkBSpline if config.interpolator == "bspline" else sitk.sitkLinear)
    if config.num_threads > 0:
        method.SetNumberOfThreads(config.num_threads)
    return method


def _run_stage(
    method: sitk.ImageRegistrationMethod,
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Euler3DTransform,
    name: str,
    margin_mm: float,
) -> dict[str, Any]:
    start = time.perf_counter()
    if margin_mm > 0:
        mask = overlap_mask(fixed, moving, transform, margin_mm)
        if mask is not None:
            method.SetMetricFixedMask(mask)
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    record = {
        "stage": name,
        "fixed_size_xyz": list(fixed.GetSize()),
        "moving_size_xyz": list(moving.GetSize()),
        "iterations": int(method.GetOptimizerIteration()),
        "metric": float(method.GetMetricValue()),
        "stop_condition": method.GetOptimizerStopConditionDescription(),
        "seconds": round(time.perf_counter() - start, 3),
    }
    logger.debug("registration stage %s: %s", name, record)
    return record


@contextlib.contextmanager
def _global_threads(num_threads: int) -> Iterator[None]:
    """Set SimpleITK's global default thread count for the duration (the metric's derivative threads do not
    follow ``ImageRegistrationMethod.SetNumberOfThreads``); ``0`` leaves it alone."""
    if num_threads <= 0:
        yield
        return
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(num_threads)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def register_rigid(fixed: sitk.Image, moving: sitk.Image, config: RegistrationConfig) -> RegistrationResult:
    """Rigidly register ``moving`` (T1 / T1c) to ``fixed`` (T2) by Mattes mutual information.

    Args:
        fixed: the reference image (any grid, any orientation); cast to float32.
        moving: the image to align (any grid); cast to float32.
        config: the settings; :func:`npcseg.registration.config.preset` gives ``default`` and ``paper``.

    Returns:
        The transform (fixed -> moving physical points) with metric, iterations, time and stop condition.
        With ``config.num_threads == 1`` (the default) a seed gives bit-identical results; with more threads
        the parallel sums of the metric's derivative may differ in the last bits from run to run.
    """
    if fixed.GetDimension() != 3 or moving.GetDimension() != 3:
        raise ValueError(f"expected 3D images, got fixed {fixed.GetDimension()}D, moving {moving.GetDimension()}D")
    with _global_threads(config.num_threads):
        return _register(fixed, moving, config)


def _register(fixed: sitk.Image, moving: sitk.Image, config: RegistrationConfig) -> RegistrationResult:
    start = time.perf_counter()
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    transform = initial_transform(fixed, moving, config.initialization)
    finest_spacing = min(fixed.GetSpacing())
    if config.match_moving_resolution:
        finest_spacing = max(finest_spacing, min(moving.GetSpacing()))
    finest = (pyramid_level(fixed, finest_spacing, 0.0), pyramid_level(moving, finest_spacing, 0.0))
    stages = []
    for level, (factor, sigma) in enumerate(zip(config.shrink_factors, config.smoothing_sigmas_mm, strict=True)):
        target = factor * finest_spacing
        if factor > 1 or sigma > 0:
            fixed_level, moving_level = pyramid_level(fixed, target, sigma), pyramid_level(moving, target, sigma)
        else:
            fixed_level, moving_level = finest
        method = _method(config, config.sampling_strategy, config.sampling_fraction)
        if config.optimizer == "one_plus_one":
            method.SetOptimizerAsOnePlusOneEvolutionary(
                numberOfIterations=config.max_iterations,
                epsilon=config.epsilon,
                initialRadius=config.initial_radius,
                growthFactor=config.growth_factor,
                seed=config.seed + 1,
            )
        else:
            method.SetOptimizerAsRegularStepGradientDescent(
                learningRate=config.learning_rate,
                minStep=config.min_step,
                numberOfIterations=config.max_iterations,
                relaxationFactor=config.relaxation_factor,
            )
        if config.scales == "explicit":
            method.SetOptimizerScales([config.rotation_scale] * 3 + [config.translation_scale] * 3)
        else:
            method.SetOptimizerScalesFromPhysicalShift()
        stage = f"level{level}_x{factor}"
        stages.append(_run_stage(method, fixed_level, moving_level, transform, stage, config.overlap_margin_mm))
    if config.refine != "none":
        method = _method(config, "regular", config.refine_sampling_fraction)
        if config.refine == "powell":
            method.SetOptimizerAsPowell(
                numberOfIterations=config.refine_max_iterations,
                maximumLineIterations=20,
                stepLength=config.refine_step,
                stepTolerance=config.refine_tolerance,
                valueTolerance=1e-6,
            )
        else:
            method.SetOptimizerAsRegularStepGradientDescent(
                learningRate=config.refine_step,
                minStep=config.refine_tolerance,
                numberOfIterations=config.refine_max_iterations,
                relaxationFactor=config.relaxation_factor,
            )
        method.SetOptimizerScalesFromPhysicalShift()
        stages.append(_run_stage(method, *finest, transform, "refine", config.overlap_margin_mm))
    return RegistrationResult(
        transform=sitk.Euler3DTransform(transform),
        final_metric=stages[-1]["metric"],
        num_iterations=sum(stage["iterations"] for stage in stages),
        seconds=time.perf_counter() - start,
        stop_condition=stages[-1]["stop_condition"],
        stages=tuple(stages),
    )
