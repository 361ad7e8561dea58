"""The reference grid: T2's direction, slices and field of view at the target in-plane spacing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcseg.io.volume import Grid
from npcseg.preprocessing.grid import fit_spacing_yx, grids_coincide, resampled_reference_grid

OBLIQUE = tuple(
    float(v) for v in np.array([[0.9848, -0.1677, 0.0449], [0.1736, 0.9513, -0.2549], [0.0, 0.2588, 0.9659]]).ravel()
)
T2 = Grid((512, 448, 25), (0.48, 0.48, 4.0), (-120.5, -100.25, 33.0), OBLIQUE)


def corners(grid: Grid) -> np.ndarray:
    """Physical positions of the outer voxel edges (index -0.5 and n - 0.5) of the first and last slices."""
    nx, ny, nz = grid.size_xyz
    return grid.index_to_physical([[-0.5, -0.5, 0], [nx - 0.5, ny - 0.5, 0], [-0.5, ny - 0.5, nz - 1]])


def test_same_spacing_gives_the_reference_grid_itself():
    assert resampled_reference_grid(T2, (0.48, 0.48)) == T2


def test_deu_halving_keeps_field_of_view_direction_and_slices():
    grid = resampled_reference_grid(T2, (0.96, 0.96))
    assert grid.size_xyz == (256, 224, 25)
    assert grid.spacing_xyz == pytest.approx((0.96, 0.96, 4.0), abs=1e-12)
    assert grid.direction == T2.direction
    np.testing.assert_allclose(corners(grid), corners(T2), atol=1e-9)
    # the slice axis is untouched: slice centres are the same physical points
    np.testing.assert_allclose(
        grid.index_to_physical([[127.5, 111.5, k] for k in range(25)]),
        T2.index_to_physical([[255.5, 223.5, k] for k in range(25)]),
        atol=1e-9,
    )


def test_t1_spacing_that_does_not_divide_the_field_of_view_covers_it_exactly():
    grid = resampled_reference_grid(T2, (0.93, 0.93))  # 512 * 0.48 / 0.93 = 264.26 -> 264
    assert grid.size_xyz[:2] == (264, 231)
    assert grid.size_xyz[0] * grid.spacing_xyz[0] == pytest.approx(512 * 0.48, abs=1e-9)
    assert grid.size_xyz[1] * grid.spacing_xyz[1] == pytest.approx(448 * 0.48, abs=1e-9)
    assert abs(grid.spacing_xyz[0] - 0.93) <= 0.93 / (2 * 264)
    np.testing.assert_allclose(corners(grid), corners(T2), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 600), st.integers(1, 600)),
    spacing=st.tuples(st.floats(0.1, 3.0), st.floats(0.1, 3.0)),
    target=st.tuples(st.floats(0.1, 5.0), st.floats(0.1, 5.0)),
)
def test_field_of_view_is_covered_exactly_for_any_spacing(size, spacing, target):
    reference = Grid((size[0], size[1], 3), (spacing[0], spacing[1], 3.0), (10.0, -20.0, 5.0), OBLIQUE)
    grid = resampled_reference_grid(reference, target)
    np.testing.assert_allclose(corners(grid), corners(reference), atol=1e-6)
    for axis, requested in ((0, target[1]), (1, target[0])):  # target is (y, x)
        assert grid.size_xyz[axis] >= 1
        if grid.size_xyz[axis] > 1 or reference.size_xyz[axis] * reference.spacing_xyz[axis] > requested:
            assert abs(grid.spacing_xyz[axis] - requested) <= requested / (2 * grid.size_xyz[axis]) + 1e-9


def test_fit_spacing_spans_the_larger_side():
    assert fit_spacing_yx(T2, 384) == pytest.approx((512 * 0.48 / 384,) * 2)
    grid = resampled_reference_grid(T2, fit_spacing_yx(T2, 384))
    assert grid.size_xyz[0] == 384 and grid.size_xyz[1] == 336


def test_invalid_spacing_is_refused():
    with pytest.raises(ValueError, match="positive"):
        resampled_reference_grid(T2, (0.0, 1.0))


def test_grids_coincide_is_strict():
    assert grids_coincide(T2, T2)
    shifted = Grid(T2.size_xyz, T2.spacing_xyz, (T2.origin_xyz[0] + 1e-4, *T2.origin_xyz[1:]), T2.direction)
    assert not grids_coincide(T2, shifted)
