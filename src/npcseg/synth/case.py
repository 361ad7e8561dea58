"""One synthetic NPC case in memory: T1, T2, T1c images, the GTV label on the T2 grid, true transforms,
clinical row.

Case ``i`` of seed ``s`` draws all its randomness from ``numpy.random.SeedSequence([s, i])``, so it is the
same whatever the number of cases in the cohort. Each part (anatomy, lesions, acquisition, signal, noise)
draws from its own child sequence, so a change in one part's drawing never shifts another's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from npcseg.io.volume import Grid, Volume
from npcseg.synth.acquisition import Acquisition, acquire, plan_acquisition
from npcseg.synth.anatomy import build_anatomy, normal_node_layers
from npcseg.synth.config import SynthConfig
from npcseg.synth.lesions import calibrate_tumour, n_category, sample_lesions, t_category
from npcseg.synth.physics import GTV_TISSUES, SEQUENCE_NAMES, TISSUES, sample_signal
from npcseg.synth.render import Layer, render
from npcseg.synth.shapes import IrregularBlob

logger = logging.getLogger(__name__)

CENTRES: tuple[tuple[str, str, float], ...] = (
    ("centre-a", "Siemens Avanto 1.5T", 1.0),
    ("centre-b", "GE Signa HDxt 3.0T", 0.8),
    ("centre-c", "Philips Ingenia 3.0T", 0.9),
)
"""(centre, scanner, noise multiplier): each case is acquired at one of these."""

CLINICAL_COLUMNS: tuple[str, ...] = (
    "case_id",
    "sex",
    "age",
    "t_category",
    "n_category",
    "chemotherapy",
    "centre",
    "scanner",
    "tumour_volume_ml",
)
"""Columns of ``clinical.csv`` in order."""


def case_id(case_index: int) -> str:
    """The id of case ``case_index``: ``synth-000``, ``synth-001``, ..."""
    return f"synth-{case_index:03d}"


@dataclass(frozen=True, eq=False)
class SyntheticCase:
    """One generated case.

    Attributes:
        case_id: the case's id.
        images: sequence (``t1``, ``t2``, ``t1c``) -> int16 image on its own grid.
        label: uint8 GTV label (0/1) on the T2 grid.
        transforms: ``t1`` and ``t1c`` -> the true rigid transform mapping a T2 physical point to the physical
            point of that series showing the same anatomy (what a perfect registration, T2 fixed, returns).
        tissues: sequence -> uint8 tissue map on that series' grid (indices into
            :data:`npcseg.synth.physics.TISSUES`); the label is ``isin(tissues["t2"], GTV tissues)``.
        clinical: the ``clinical.csv`` row (keys :data:`CLINICAL_COLUMNS`).
        acquisition: the series geometry.
    """

    case_id: str
    images: dict[str, sitk.Image]
    label: sitk.Image
    transforms: dict[str, sitk.Euler3DTransform]
    tissues: dict[str, sitk.Image]
    clinical: dict[str, str | int | float]
    acquisition: Acquisition = field(repr=False)


def case_rngs(seed: int, case_index: int) -> dict[str, np.random.Generator]:
    """Independent random generators of case ``case_index`` (one per part of the generation)."""
    if seed < 0 or case_index < 0:
        raise ValueError(f"seed and case index must not be negative, got seed={seed}, case_index={case_index}")
    names = ("anatomy", "lesions", "acquisition", "signal", "images", "clinical")
    children = np.random.SeedSequence([seed, case_index]).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}


def _largest_area_mm2(grid: Grid) -> Callable[[IrregularBlob], float]:
    """The largest per-slice area (mm^2) of a tumour on ``grid`` (on a 2x coarser in-plane grid with the same
    field of view when the spacing is below 1 mm: the calibration needs the area, not the fine margin)."""
    if grid.spacing_xyz[0] < 1.0 and grid.size_xyz[0] % 2 == 0 and grid.size_xyz[1] % 2 == 0:
        half = np.asarray(grid.spacing_xyz) * np.array([0.5, 0.5, 0.0])
        grid = Grid(
            size_xyz=(grid.size_xyz[0] // 2, grid.size_xyz[1] // 2, grid.size_xyz[2]),
            spacing_xyz=(grid.spacing_xyz[0] * 2, grid.spacing_xyz[1] * 2, grid.spacing_xyz[2]),
            origin_xyz=tuple(float(v) for v in np.asarray(grid.origin_xyz) + grid.direction_matrix @ half),  # type: ignore[arg-type]
            direction=grid.direction,
        )
    spacing = grid.spacing_xyz[0] * grid.spacing_xyz[1]

    def largest_area(tumour: IrregularBlob) -> float:
        rendering = render([Layer(shape=tumour, tissues=("tumour",))], grid, np.eye(4), TISSUES, None)
        return float((rendering.tissue > 0).sum(axis=(1, 2)).max()) * spacing

    return largest_area


def synthesize_case(case_index: int, seed: int, config: SynthConfig | None = None) -> SyntheticCase:
    """Generate case ``case_index`` of the cohort with ``seed`` (deterministic; independent of the cohort
    size).

    Args:
        case_index: the case number (0-based).
        seed: the cohort seed.
        config: generator settings (defaults: :class:`SynthConfig`).
    """
    config = config if config is not None else SynthConfig()
    rngs = case_rngs(seed, case_index)
    anatomy = build_anatomy(rngs["anatomy"])
    slice_area = (config.t2_matrix * config.t2_spacing_mm) ** 2
    lesions = sample_lesions(
        rngs["lesions"],
        anatomy.landmarks,
        area_fraction_range=config.tumour_area_fraction_range,
        height_mm_range=config.tumour_height_mm_range,
        num_nodes_range=config.num_metastatic_nodes_range,
        necrosis_probability=config.necrosis_probability,
        slice_area_mm2=slice_area,
    )
    normal_nodes = normal_node_layers(
        rngs["lesions"],
        anatomy.landmarks,
        int(rngs["lesions"].integers(config.num_normal_nodes_range[0], config.num_normal_nodes_range[1] + 1)),
    )
    acquisition = plan_acquisition(rngs["acquisition"], config, anatomy.landmarks.head_center, lesions.z_extent())
    t2_grid = acquisition.grids["t2"]
    lesions = calibrate_tumour(lesions, _largest_area_mm2(t2_grid), slice_area)
    normal_layers = [*anatomy.layers, *normal_nodes]
    layers = [*normal_layers, *lesions.layers()]
    signal = sample_signal(rngs["signal"])
    centre, scanner, noise_multiplier = CENTRES[int(rngs["clinical"].integers(len(CENTRES)))]
    images: dict[str, sitk.Image] = {}
    tissues: dict[str, sitk.Image] = {}
    tumour_under = np.zeros(0, dtype=np.uint8)
    tumour_top_z = -np.inf
    for sequence in SEQUENCE_NAMES:
        grid = acquisition.grids[sequence]
        rendering = render(
            layers,
            grid,
            acquisition.physical_to_anatomy(sequence),
            TISSUES,
            signal[sequence],
            label_from=len(normal_layers),
        )
        assert rendering.intensity is not None
        image = _acquire(rngs["images"], rendering.intensity, grid, config, noise_multiplier)
        images[sequence] = image
        tissues[sequence] = Volume(rendering.tissue, grid).to_image()
        if sequence == "t2":
            is_tumour = rendering.tissue == TISSUES.index("tumour")
            tumour_under = rendering.tissue_under[is_tumour]
            tumour_top_z = _highest_z(is_tumour, grid)
    tissue_t2 = sitk.GetArrayViewFromImage(tissues["t2"])
    label_array = np.isin(tissue_t2, [TISSUES.index(name) for name in GTV_TISSUES]).astype(np.uint8)
    label = Volume(label_array, t2_grid).to_image()
    voxel_ml = float(np.prod(t2_grid.spacing_xyz)) / 1000.0
    reach_above = tumour_top_z - anatomy.landmarks.skull_base_z
    identifier = case_id(case_index)
    clinical = _clinical_row(
        rngs["clinical"],
        identifier,
        t_category(tumour_under, voxel_ml, reach_above),
        n_category(lesions.nodes),
    )
    clinical.update(centre=centre, scanner=scanner, tumour_volume_ml=round(float(label_array.sum()) * voxel_ml, 3))
    return SyntheticCase(
        case_id=identifier,
        images=images,
        label=label,
        transforms={sequence: acquisition.euler_transform(sequence) for sequence in ("t1", "t1c")},
        tissues=tissues,
        clinical=clinical,
        acquisition=acquisition,
    )


def _highest_z(mask: np.ndarray, grid: Grid) -> float:
    """The largest anatomy z (mm) of a voxel centre in ``mask`` (``-inf`` for an empty mask)."""
    indices_zyx = np.argwhere(mask)
    if indices_zyx.size == 0:
        return -np.inf
    return float(grid.index_to_physical(indices_zyx[:, ::-1].astype(float))[:, 2].max())


def _acquire(
    rng: np.random.Generator, signal: np.ndarray, grid: Grid, config: SynthConfig, noise_multiplier: float
) -> sitk.Image:
    """Texture, bias field, Rician noise and the per-case intensity scale; returns an int16 image on
    ``grid``."""
    stored = acquire(
        rng,
        signal,
        float(grid.spacing_xyz[0]),
        texture_fraction=config.texture_fraction,
        bias_strength=config.bias_strength,
        noise_sigma=config.noise_fraction * noise_multiplier,
        scale=float(rng.uniform(*config.intensity_scale_range)),
    )
    return Volume(stored, grid).to_image()


def _clinical_row(
    rng: np.random.Generator, identifier: str, t_stage: str, n_stage: str
) -> dict[str, str | int | float]:
    return {
        "case_id": identifier,
        "sex": "M" if rng.random() < 0.72 else "F",
        "age": int(np.clip(round(rng.normal(48.0, 11.0)), 18, 85)),
        "t_category": t_stage,
        "n_category": n_stage,
        "chemotherapy": "induction" if rng.random() < 0.4 else "naive",
    }
