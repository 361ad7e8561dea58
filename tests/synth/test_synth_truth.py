"""The true transforms: resampling a series through its true transform puts it exactly onto the T2 grid."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from npcseg.io.volume import Grid
from npcseg.registration.resample import resample_onto
from npcseg.synth.acquisition import euler_from_affine, random_rigid
from npcseg.synth.anatomy import build_anatomy
from npcseg.synth.case import synthesize_case
from npcseg.synth.config import small_config
from npcseg.synth.lesions import sample_lesions
from npcseg.synth.physics import GTV_TISSUES, TISSUES
from npcseg.synth.render import render


def _moved_grid(grid: Grid, affine: np.ndarray) -> Grid:
    """The grid whose voxel centres are ``affine`` applied to ``grid``'s voxel centres."""
    direction = affine[:3, :3] @ grid.direction_matrix
    origin = affine[:3, :3] @ np.asarray(grid.origin_xyz) + affine[:3, 3]
    return Grid(grid.size_xyz, grid.spacing_xyz, tuple(origin), tuple(direction.ravel()))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1])
def test_series_on_the_moved_grid_match_t2_voxel_for_voxel(seed: int) -> None:
    # A series whose grid is the T2 grid carried along by the true transform T samples the anatomy at exactly
    # the T2 voxels' anatomy, so its tissue map equals T2's, and resampling it through T (nearest neighbour:
    # the sample points fall on voxel centres) gives T2's map back.
    rng = np.random.default_rng(seed)
    anatomy = build_anatomy(rng)
    lesions = sample_lesions(
        rng,
        anatomy.landmarks,
        area_fraction_range=(0.01, 0.02),
        height_mm_range=(20.0, 30.0),
        num_nodes_range=(1, 2),
        necrosis_probability=0.5,
        slice_area_mm2=245.0**2,
    )
    layers = [*anatomy.layers, *lesions.layers()]
    center = np.array([0.0, 5.0, 0.0])
    t2_grid = Grid((96, 96, 10), (2.5, 2.5, 4.0), (-118.75, -113.75, -18.0), tuple(np.eye(3).ravel()))  # type: ignore[arg-type]
    truth = random_rigid(rng, 8.0, 8.0, center)
    t1_grid = _moved_grid(t2_grid, truth)
    t2 = render(layers, t2_grid, np.eye(4), TISSUES, None).tissue
    t1 = render(layers, t1_grid, np.linalg.inv(truth), TISSUES, None).tissue
    assert (t2 != t1).mean() < 1e-3  # only float rounding exactly on a surface may differ
    t1_image = grid_image(t1, t1_grid)
    back = sitk.GetArrayFromImage(
        resample_onto(t1_image, t2_grid, euler_from_affine(truth, center), interpolator="nearest")
    )
    assert (back != t2).mean() < 1e-3
    wrong = sitk.GetArrayFromImage(resample_onto(t1_image, t2_grid, None, interpolator="nearest"))
    assert (wrong != t2).mean() > 0.05


def grid_image(array: np.ndarray, grid: Grid) -> sitk.Image:
    return grid.apply_to(sitk.GetImageFromArray(array))


def _dice(first: np.ndarray, second: np.ndarray) -> float:
    return float(2 * (first & second).sum() / (first.sum() + second.sum()))


def test_true_transform_of_a_case_registers_t1_and_t1c_onto_t2() -> None:
    # Large motion so that "no registration" is clearly worse; T1 and T1c keep their own coarser grids.
    config = small_config(misalignment_mm=12.0, misalignment_deg=8.0, num_previews=0)
    case = synthesize_case(3, 5, config)
    t2_grid = Grid.from_image(case.images["t2"])
    t2_tissue = sitk.GetArrayFromImage(case.tissues["t2"])
    label = sitk.GetArrayFromImage(case.label) == 1
    gtv = [TISSUES.index(name) for name in GTV_TISSUES]
    for sequence in ("t1", "t1c"):
        registered, unregistered = (
            sitk.GetArrayFromImage(
                resample_onto(case.tissues[sequence], t2_grid, transform, interpolator="nearest", default_value=255)
            )
            for transform in (case.transforms[sequence], None)
        )
        # Compare where the series covers the T2 voxel (the motion moves part of the T2 stack out of its
        # slab).
        head = ((t2_tissue > 0) | (registered > 0)) & (registered != 255) & (unregistered != 255)
        agreement = (registered == t2_tissue)[head].mean()
        assert agreement > 0.7  # limited by nearest-neighbour sampling of the 3.7 mm T1 grid
        assert agreement > (unregistered == t2_tissue)[head].mean() + 0.1
        assert _dice(np.isin(registered, gtv), label) > 0.85
        assert _dice(np.isin(registered, gtv), label) > _dice(np.isin(unregistered, gtv), label) + 0.1
        # The intensity image follows its tissue map through the same transform: a registered T1 shows dark
        # air where the T2 tissue map has air inside the head, and bright fat where it has fat.
        image = sitk.GetArrayFromImage(resample_onto(case.images[sequence], t2_grid, case.transforms[sequence]))
        fat = image[(t2_tissue == TISSUES.index("fat"))].mean()
        air = image[(t2_tissue == TISSUES.index("air")) & (registered == TISSUES.index("air"))].mean()
        assert fat > 5 * air
