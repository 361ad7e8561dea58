"""One case through pre-processing (METHODS.md method 1, steps 1-4) and the exact way back.

Forward (:func:`preprocess_case`):

1. the moving sequences' rigid transforms to the reference (registered here, given, or identity);
2. the output grid (:mod:`npcseg.preprocessing.grid`): the reference's slices, direction and field of view at
   the target in-plane spacing; every sequence resampled onto it linearly (moving ones through their
   transform; outside its field of view a sequence takes its own minimum, which normalises to 0), the label by
   ``linear_threshold`` or ``nearest``;
3. intensity normalisation (per volume, or by the dataset maximum) (:mod:`npcseg.preprocessing.normalization`);
4. centred zero-pad / crop of every slice to S x S (:mod:`npcseg.preprocessing.cropping`).

Everything needed to go back is in the case record (plain JSON data). Backward (:func:`to_original_grid`):
undo the pad / crop (cropped regions become 0), then resample linearly onto the original reference grid (a
copy when the grids coincide); masks are thresholded at 0.5 after the linear resampling, probabilities stay
continuous.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

import npcseg
from npcseg.io.cohort import Case
from npcseg.io.images import read_image
from npcseg.io.volume import Grid
from npcseg.preprocessing.config import FIT, PreprocessingConfig
from npcseg.preprocessing.cropping import CropPad
from npcseg.preprocessing.grid import (
    fit_spacing_yx,
    grids_coincide,
    in_plane_spacing_yx,
    resampled_reference_grid,
)
from npcseg.preprocessing.normalization import fit_normalization
from npcseg.registration.resample import resample_onto

logger = logging.getLogger(__name__)

MASK_THRESHOLD = 0.5
"""A linearly resampled 0/1 mask is foreground where it is >= this value."""


@dataclass(frozen=True, eq=False)
class PreprocessedCase:
    """One case ready for a 2D network.

    Attributes:
        case_id: the case folder name.
        image: float32 ``(C, Z, S, S)``, channels in ``config.sequences`` order, normalised, padded / cropped.
        label: uint8 ``(Z, S, S)`` with values 0 / 1, or ``None`` when the case has no label.
        record: JSON-able record of every step (grids, offsets, normalisation, registration QA), enough to
            invert.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    record: dict[str, Any]

    @property
    def num_slices(self) -> int:
        """Number of slices Z."""
        return int(self.image.shape[1])


def target_spacing_yx(config: PreprocessingConfig, grids: dict[str, Grid]) -> tuple[float, float]:
    """The requested in-plane output spacing ``(y, x)`` in mm of one case.

    Args:
        config: the settings (explicit spacing, ``spacing_from`` sequence, or ``fit``).
        grids: the case's original grids by sequence name (must hold the reference and ``spacing_from``).
    """
    if config.target_spacing_yx_mm is not None:
        return (float(config.target_spacing_yx_mm[0]), float(config.target_spacing_yx_mm[1]))
    if config.spacing_from == FIT:
        return fit_spacing_yx(grids[config.reference_sequence], config.slice_size)
    return in_plane_spacing_yx(grids[config.spacing_from])


def _read_float(path: Any) -> sitk.Image:
    return sitk.Cast(read_image(path), sitk.sitkFloat32)


def _resample_intensities(
    image: sitk.Image, grid: Grid, transform: sitk.Transform | None, *, same_grid: bool
) -> np.ndarray:
    """Linear resampling onto ``grid``; a copy when the image already lies on it with no transform."""
    if transform is None and same_grid:
        return sitk.GetArrayFromImage(image).astype(np.float32)
    minimum = float(sitk.GetArrayViewFromImage(image).min())
    resampled = resample_onto(image, grid, transform, interpolator="linear", default_value=minimum)
    return sitk.GetArrayFromImage(resampled).astype(np.float32)


def resample_label(label: sitk.Image, grid: Grid, method: str) -> np.ndarray:
    """A binary label (any non-zero voxel is foreground) resampled onto ``grid`` as uint8 0 / 1 ``(z, y, x)``.

    Args:
        label: the label on the reference grid.
        grid: the output grid.
        method: ``linear_threshold`` (0/1 interpolated linearly, foreground where >= 0.5) or ``nearest``.
    """
    binary = sitk.GetArrayFromImage(label) > 0
    if grids_coincide(Grid.from_image(label), grid):
        return binary.astype(np.uint8)
    if method == "nearest":
        source = Grid.from_image(label).apply_to(sitk.GetImageFromArray(binary.astype(np.uint8)))
        return sitk.GetArrayFromImage(resample_onto(source, grid, interpolator="nearest")).astype(np.uint8)
    if method != "linear_threshold":
        raise ValueError(f"unknown label resampling {method!r}; use linear_threshold or nearest")
    source = Grid.from_image(label).apply_to(sitk.GetImageFromArray(binary.astype(np.float32)))
    values = sitk.GetArrayFromImage(resample_onto(source, grid, interpolator="linear"))
    return (values >= MASK_THRESHOLD).astype(np.uint8)


def _transforms_for(
    case: Case,
    config: PreprocessingConfig,
    reference: sitk.Image,
    moving_images: dict[str, sitk.Image],
    transforms: dict[str, sitk.Transform] | None,
) -> tuple[dict[str, sitk.Transform | None], dict[str, Any]]:
    """The transform of every moving sequence (``moving_images``) and its QA record."""
    from npcseg.registration.rigid import describe_transform, register_rigid

    moving = tuple(moving_images)
    if transforms is not None:
        missing = [sequence for sequence in moving if sequence not in transforms]
        if missing:
            raise ValueError(f"case {case.case_id}: no transform given for sequence(s) {missing}")
        return (
            {sequence: transforms[sequence] for sequence in moving},
            {s: {"source": "given", "transform": describe_transform(transforms[s])} for s in moving},
        )
    if config.registration_source == "identity":
        return {sequence: None for sequence in moving}, {sequence: {"source": "identity"} for sequence in moving}
    if config.registration_source == "precomputed":
        raise ValueError(
            f"case {case.case_id}: registration_source is 'precomputed' but no transforms were given "
            "(pass the folder written by `npcseg register`)"
        )
    found: dict[str, sitk.Transform | None] = {}
    quality: dict[str, Any] = {}
    for sequence in moving:
        result = register_rigid(reference, moving_images[sequence], config.registration)
        found[sequence] = result.transform
        quality[sequence] = {"source": "registered", "config": config.registration.name, **result.to_dict()}
        logger.info(
            "%s: %s registered to %s in %.1f s",
            case.case_id,
            sequence,
            config.reference_sequence,
            result.seconds,
        )
    return found, quality


def preprocess_case(
    case: Case,
    config: PreprocessingConfig,
    transforms: dict[str, sitk.Transform] | None = None,
) -> PreprocessedCase:
    """Pre-process one case: register, resample onto the output grid, normalise, pad / crop.

    Args:
        case: the case's files (:func:`npcseg.io.cohort.load_case`).
        config: the settings.
        transforms: per moving sequence, the transform mapping reference (T2) physical points to that
            sequence's physical points; when ``None`` they come from ``config.registration_source``.

    Returns:
        The image ``(C, Z, S, S)``, the label ``(Z, S, S)`` (or ``None``) and the record.

    Raises:
        FileNotFoundError: a needed sequence is missing (the message names the case folder and the sequence).
        ValueError: the label does not lie on the reference grid, or no transforms are available.
    """
    case.require(config.required_sequences)
    reference = _read_float(case.image(config.reference_sequence))
    original_grid = Grid.from_image(reference)
    grids = {config.reference_sequence: original_grid}
    if config.target_spacing_yx_mm is None and config.spacing_from != FIT:
        grids[config.spacing_from] = Grid.from_image(read_image(case.image(config.spacing_from)))
    requested = target_spacing_yx(config, grids)
    grid = resampled_reference_grid(original_grid, requested)
    same_grid = grids_coincide(original_grid, grid)
    crop_pad = CropPad.centred((grid.size_xyz[1], grid.size_xyz[0]), config.slice_size)

    moving_images = {sequence: _read_float(case.image(sequence)) for sequence in config.moving_sequences}
    moving_transforms, registration = _transforms_for(case, config, reference, moving_images, transforms)
    channels = []
    normalization = {}
    for sequence in config.sequences:
        if sequence == config.reference_sequence:
            values = _resample_intensities(reference, grid, None, same_grid=same_grid)
        else:
            values = _resample_intensities(moving_images[sequence], grid, moving_transforms[sequence], same_grid=False)
        scaling = fit_normalization(
            values,
            config.normalization,
            percentile_low=config.percentile_low,
            percentile_high=config.percentile_high,
            dataset_maximum=(config.dataset_max or {}).get(sequence),
        )
        normalization[sequence] = scaling.to_dict()
        channels.append(crop_pad.apply(scaling.apply(values)))
    image = np.stack(channels).astype(np.float32, copy=False)

    label = None
    label_record: dict[str, Any] = {"present": case.label is not None}
    if case.label is not None:
        label_image = read_image(case.label)
        mismatch = original_grid.mismatch(Grid.from_image(label_image))
        if mismatch is not None:
            raise ValueError(
                f"{case.label}: label does not lie on the {config.reference_sequence} grid of case "
                f"{case.case_id} ({mismatch})"
            )
        original_grid.apply_to(label_image)  # identical within tolerance: take the reference's exact geometry
        resampled = resample_label(label_image, grid, config.label_resampling)
        label = crop_pad.apply(resampled)
        if np.count_nonzero(label) < np.count_nonzero(resampled):
            logger.warning(
                "%s: the crop to %d x %d cuts away %d label voxel(s)",
                case.case_id,
                config.slice_size,
                config.slice_size,
                np.count_nonzero(resampled) - np.count_nonzero(label),
            )
        label_record.update(
            method=config.label_resampling,
            file=str(case.label),
            foreground_voxels_original=int(np.count_nonzero(sitk.GetArrayViewFromImage(label_image))),
            foreground_voxels_resampled=int(np.count_nonzero(resampled)),
            foreground_voxels_output=int(np.count_nonzero(label)),
        )

    record = {
        "case_id": case.case_id,
        "folder": str(case.folder),
        "package_version": npcseg.__version__,
        "sequences": list(config.sequences),
        "reference_sequence": config.reference_sequence,
        "files": {sequence: str(case.image(sequence)) for sequence in config.sequences},
        "requested_spacing_yx_mm": list(requested),
        "original_grid": original_grid.to_dict(),
        "resampled_grid": grid.to_dict(),
        "crop_pad": crop_pad.to_dict(),
        "normalization": normalization,
        "registration": registration,
        "label": label_record,
        "image_shape_czyx": list(image.shape),
    }
    return PreprocessedCase(case_id=case.case_id, image=image, label=label, record=record)


def to_original_grid(slices: np.ndarray, record: dict[str, Any], *, is_mask: bool | None = None) -> sitk.Image:
    """Bring network-grid slices back onto the case's original reference (T2) grid, exactly.

    Args:
        slices: ``(Z, S, S)`` probabilities (float) or a mask (bool / integer 0-1) on the preprocessed grid.
        record: the case record from :func:`preprocess_case` (or ``load_preprocessed``).
        is_mask: treat ``slices`` as a mask (threshold at 0.5 after linear resampling, uint8 output) or as
            probabilities (float32 output); ``None`` decides by dtype (bool / integer means mask).

    Returns:
        An image with exactly the original grid's size, spacing, origin and direction. Regions the crop cut
        away are 0; a mask is uint8 0 / 1, probabilities float32.
    """
    crop_pad = CropPad.from_dict(record["crop_pad"])
    original = Grid.from_dict(record["original_grid"])
    resampled = Grid.from_dict(record["resampled_grid"])
    expected = (resampled.size_xyz[2], crop_pad.size, crop_pad.size)
    array = np.asarray(slices)
    if array.shape != expected:
        raise ValueError(f"case {record.get('case_id')}: expected slices of shape {expected}, got {array.shape}")
    if is_mask is None:
        is_mask = array.dtype == bool or np.issubdtype(array.dtype, np.integer)
    values = crop_pad.invert(array.astype(np.float32), fill=0.0)
    if not grids_coincide(original, resampled):
        source = resampled.apply_to(sitk.GetImageFromArray(values))
        values = sitk.GetArrayFromImage(resample_onto(source, original, interpolator="linear", default_value=0.0))
    output = (values >= MASK_THRESHOLD).astype(np.uint8) if is_mask else values.astype(np.float32, copy=False)
    return original.apply_to(sitk.GetImageFromArray(output))
