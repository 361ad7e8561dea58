"""A tiny labelled cohort and its preprocessed cache for the cross-validation tests.

Each case: T2 on a 48 x 40 x 5 grid of 0.5 x 0.5 x 4 mm (an oblique-free LPS grid with its own origin), T1 on the
same field of view at 1 mm in-plane (already co-registered: ``registration_source='identity'``), a bright disc
stack (the tumour, label 1) of a case-specific radius inside a dimmer head ellipse. The cache resamples to T1's
1 mm spacing (24 x 20 voxels) and pads to 64 x 64, so bringing predictions back to the T2 grid is not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.io.images import write_image
from npcseg.models.registry import tiny_config
from npcseg.preprocessing.cache import preprocess_cohort
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.training.config import TrainingConfig
from npcseg.training.crossval import CrossValidationConfig

T2_SIZE_XYZ = (48, 40, 5)
T2_SPACING_XYZ = (0.5, 0.5, 4.0)


def _image(array: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def write_case(folder: Path, radius_mm: float, origin_xyz: tuple[float, float, float], seed: int) -> None:
    """Write ``folder/{t1,t2,label}.nii.gz`` with a tumour of ``radius_mm`` on slices 1-3."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, factor in (("t2", 1), ("t1", 2)):
        size_x, size_y, size_z = T2_SIZE_XYZ[0] // factor, T2_SIZE_XYZ[1] // factor, T2_SIZE_XYZ[2]
        spacing = (T2_SPACING_XYZ[0] * factor, T2_SPACING_XYZ[1] * factor, T2_SPACING_XYZ[2])
        shift = (spacing[0] - T2_SPACING_XYZ[0]) / 2  # same field of view: voxel edges aligned
        origin = (origin_xyz[0] + shift, origin_xyz[1] + shift, origin_xyz[2])
        y, x = np.mgrid[0:size_y, 0:size_x]
        y_mm = (y + 0.5) * spacing[1] - T2_SIZE_XYZ[1] * T2_SPACING_XYZ[1] / 2
        x_mm = (x + 0.5) * spacing[0] - T2_SIZE_XYZ[0] * T2_SPACING_XYZ[0] / 2
        head = (x_mm / 11.0) ** 2 + (y_mm / 9.0) ** 2 <= 1
        tumour = (x_mm - 2.0) ** 2 + (y_mm + 1.0) ** 2 <= radius_mm**2
        volume = np.zeros((size_z, size_y, size_x), dtype=np.float32)
        for z in range(size_z):
            volume[z][head] = 300.0
            if 1 <= z <= 3:
                volume[z][tumour] = 900.0 if name == "t2" else 600.0
        volume += rng.normal(0, 10.0, volume.shape).astype(np.float32)
        write_image(_image(volume.astype(np.int16), spacing, origin), folder / f"{name}.nii.gz")
        if name == "t2":
            label = np.zeros_like(volume, dtype=np.uint8)
            label[1:4][:, tumour] = 1
            write_image(_image(label, spacing, origin), folder / "label.nii.gz")


@dataclass(frozen=True)
class TinyCohort:
    """A written cohort and its cache."""

    cohort: Path
    cache: Path
    case_ids: tuple[str, ...]


def build_tiny_cohort(root: Path, num_cases: int = 5) -> TinyCohort:
    """Write ``root/cohort`` with ``num_cases`` cases (tumour radii 2.5-5 mm) and preprocess it into ``root/cache``."""
    case_ids = tuple(f"case{index:03d}" for index in range(num_cases))
    for index, case_id in enumerate(case_ids):
        radius = 2.5 + 2.5 * index / max(num_cases - 1, 1)
        origin = (-12.0 + index, -10.0 - 0.5 * index, 20.0 + 2 * index)
        write_case(root / "cohort" / "cases" / case_id, radius, origin, seed=index)
    config = PreprocessingConfig(slice_size=64, registration_source="identity")
    preprocess_cohort(root / "cohort", root / "cache", config, progress=False)
    return TinyCohort(cohort=root / "cohort", cache=root / "cache", case_ids=case_ids)


def tiny_cv_config(num_folds: int = 2, epochs: int = 1, **training: object) -> CrossValidationConfig:
    """A fast cross-validation: tiny DEU, 1 thread, few slices per epoch."""
    model_options = {key: value for key, value in vars(tiny_config("deu")).items() if key != "sequences"}
    settings = {
        "model": "deu",
        "model_options": model_options,
        "epochs": epochs,
        "max_slices_per_epoch": 6,
        "num_threads": 1,
        "checkpoint_every_steps": 0,
        **training,
    }
    return CrossValidationConfig(num_folds=num_folds, seed=3, training=TrainingConfig(**settings))  # type: ignore[arg-type]
