"""Grid and Volume: geometry survives every file format, and index <-> physical maps agree with SimpleITK."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from npcseg.io.images import read_volume, write_image
from npcseg.io.volume import Grid, Volume

SUFFIXES = [".nii.gz", ".nii", ".nrrd", ".mha"]


def oblique_direction(improper: bool) -> tuple[float, ...]:
    """An oblique rotation; ``improper`` flips the third axis too (determinant -1, as in many LPS scans)."""
    rotation = Rotation.from_euler("xyz", [20.0, -35.0, 50.0], degrees=True).as_matrix()
    if improper:
        rotation = rotation @ np.diag([1.0, 1.0, -1.0])
    return tuple(float(v) for v in rotation.ravel())


def oblique_grid(improper: bool = False) -> Grid:
    """Anisotropic, oblique, off-origin: every field of the grid is non-trivial."""
    return Grid(
        size_xyz=(7, 6, 5),
        spacing_xyz=(0.4883, 0.7, 4.0),
        origin_xyz=(-112.34567, 87.654321, -43.21),
        direction=oblique_direction(improper),
    )


def assert_same_grid(read: Grid, written: Grid, suffix: str) -> None:
    # NIfTI stores geometry in float32; NRRD and MetaImage in decimal text at double precision.
    tolerance = 1e-4 if suffix.startswith(".nii") else 1e-9
    assert read.size_xyz == written.size_xyz
    np.testing.assert_allclose(read.spacing_xyz, written.spacing_xyz, rtol=1e-6, atol=0)
    np.testing.assert_allclose(read.origin_xyz, written.origin_xyz, rtol=0, atol=tolerance)
    np.testing.assert_allclose(read.direction, written.direction, rtol=0, atol=1e-6)
    assert read.matches(written)


@pytest.mark.parametrize("improper", [False, True], ids=["rotation", "rotation+flip"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_volume_round_trip_through_every_format(tmp_path: Path, suffix: str, dtype: type, improper: bool) -> None:
    grid = oblique_grid(improper)
    array = (np.random.default_rng(0).uniform(0, 200, size=grid.shape_zyx)).astype(dtype)
    volume = Volume(array, grid)

    read = read_volume(write_image(volume, tmp_path / f"image{suffix}"))

    assert_same_grid(read.grid, grid, suffix)
    assert read.array.dtype == array.dtype
    np.testing.assert_array_equal(read.array, array)
    assert read.spacing_mm == pytest.approx((4.0, 0.7, 0.4883))


def test_array_order_is_zyx_and_grid_order_is_xyz() -> None:
    grid = oblique_grid()
    array = np.arange(np.prod(grid.shape_zyx), dtype=np.float32).reshape(grid.shape_zyx)
    image = Volume(array, grid).to_image()

    assert image.GetSize() == grid.size_xyz == (7, 6, 5)
    assert grid.shape_zyx == (5, 6, 7)
    assert grid.spacing_zyx == (4.0, 0.7, 0.4883)
    assert image.GetPixel(6, 2, 4) == array[4, 2, 6]
    assert Volume.from_image(image).grid == grid


@pytest.mark.parametrize("improper", [False, True])
def test_index_to_physical_agrees_with_simpleitk(improper: bool) -> None:
    grid = oblique_grid(improper)
    image = grid.reference_image()
    indices = np.random.default_rng(1).uniform(-2, 8, size=(50, 3))

    points = grid.index_to_physical(indices)

    expected = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(index)) for index in indices])
    np.testing.assert_allclose(points, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(grid.physical_to_index(points), indices, rtol=0, atol=1e-9)
    from_sitk = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(point)) for point in points])
    np.testing.assert_allclose(grid.physical_to_index(points), from_sitk, rtol=0, atol=1e-9)


def test_index_to_physical_on_single_points_and_corners() -> None:
    grid = oblique_grid()
    np.testing.assert_allclose(grid.index_to_physical(np.zeros(3)), [grid.origin_xyz], atol=1e-12)
    # one step along index axis k moves spacing_k mm along column k of the direction
    step = grid.index_to_physical(np.array([0.0, 0.0, 1.0])) - np.asarray(grid.origin_xyz)
    np.testing.assert_allclose(step[0], 4.0 * grid.direction_matrix[:, 2], atol=1e-12)


def test_mismatch_names_the_first_difference() -> None:
    grid = oblique_grid()

    def changed(**fields: object) -> Grid:
        return dataclasses.replace(grid, **fields)  # type: ignore[arg-type]

    assert grid.mismatch(grid) is None
    assert grid.matches(changed(origin_xyz=(-112.34567 + 5e-4, 87.654321, -43.21)))  # within 1e-3 mm
    size_message = grid.mismatch(changed(size_xyz=(7, 6, 6)))
    assert size_message is not None and size_message.startswith("size (7, 6, 5) != (7, 6, 6)")
    spacing_message = grid.mismatch(changed(spacing_xyz=(0.4883, 0.7, 3.0)))
    assert spacing_message is not None and spacing_message.startswith("spacing")
    origin_message = grid.mismatch(changed(origin_xyz=(0.0, 0.0, 0.0)))
    assert origin_message is not None and origin_message.startswith("origin")
    direction_message = grid.mismatch(changed(direction=oblique_direction(True)))
    assert direction_message is not None and direction_message.startswith("direction")


def test_grid_dict_round_trip_through_json() -> None:
    grid = oblique_grid(improper=True)
    assert Grid.from_dict(json.loads(json.dumps(grid.to_dict()))) == grid


def test_reference_image_and_apply_to() -> None:
    grid = oblique_grid()
    reference = grid.reference_image(sitk.sitkFloat32)
    assert reference.GetPixelID() == sitk.sitkFloat32
    assert Grid.from_image(reference) == grid
    with pytest.raises(ValueError, match="does not match grid size"):
        grid.apply_to(sitk.Image([3, 3, 3], sitk.sitkUInt8))


def test_volume_refuses_a_wrong_shape_and_non_3d_images() -> None:
    with pytest.raises(ValueError, match=r"array shape \(7, 6, 5\) does not match grid shape \(5, 6, 7\)"):
        Volume(np.zeros((7, 6, 5)), oblique_grid())
    with pytest.raises(ValueError, match="expected a 3D image, got 2D"):
        Volume.from_image(sitk.Image([4, 5], sitk.sitkUInt8))


def test_with_array_keeps_the_grid() -> None:
    volume = Volume(np.zeros(oblique_grid().shape_zyx, np.float32), oblique_grid())
    other = volume.with_array(np.ones_like(volume.array))
    assert other.grid is volume.grid and other.array.sum() == volume.array.size


def test_boolean_mask_becomes_uint8_image(tmp_path: Path) -> None:
    mask = np.zeros(oblique_grid().shape_zyx, dtype=bool)
    mask[1:3, 2:4, 3:6] = True
    image = Volume(mask, oblique_grid()).to_image()
    assert image.GetPixelID() == sitk.sitkUInt8
    read = read_volume(write_image(Volume(mask, oblique_grid()), tmp_path / "mask.nii.gz"))
    np.testing.assert_array_equal(read.array.astype(bool), mask)
