"""Tiny cohorts on disk for the I/O tests: small SimpleITK images and a builder writing cases into tmp_path.

A good case has T1 on a coarse grid (1 x 1 x 4 mm) and T2 with its label on a fine grid (0.5 x 0.5 x 4 mm),
with different origins: each sequence on its own grid, as in real data. The label holds a 2 x 3 x 2 block of
ones (12 voxels, 12 x 0.5 x 0.5 x 4 mm^3 = 0.012 ml).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

T2_SIZE_XYZ = (8, 10, 3)
T2_SPACING_XYZ = (0.5, 0.5, 4.0)
T2_ORIGIN_XYZ = (-2.0, -2.5, 1.0)
T1_SIZE_XYZ = (4, 5, 3)
T1_SPACING_XYZ = (1.0, 1.0, 4.0)
T1_ORIGIN_XYZ = (-1.75, -2.25, 1.0)
NUM_TUMOUR_VOXELS = 12


def make_image(
    size_xyz: tuple[int, ...],
    spacing_xyz: tuple[float, ...],
    origin_xyz: tuple[float, ...] = (0.0, 0.0, 0.0),
    *,
    array: np.ndarray | None = None,
    seed: int = 0,
    direction: tuple[float, ...] | None = None,
) -> sitk.Image:
    """A float32 image of random intensities (or ``array``, in (z, y, x) order) with the given geometry."""
    if array is None:
        shape_zyx = tuple(reversed(size_xyz))
        array = np.random.default_rng(seed).uniform(0, 100, size=shape_zyx).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    assert image.GetSize() == tuple(size_xyz)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin_xyz)
    if direction is not None:
        image.SetDirection(direction)
    return image


def t2_image(seed: int = 0) -> sitk.Image:
    return make_image(T2_SIZE_XYZ, T2_SPACING_XYZ, T2_ORIGIN_XYZ, seed=seed)


def t1_image(seed: int = 1) -> sitk.Image:
    return make_image(T1_SIZE_XYZ, T1_SPACING_XYZ, T1_ORIGIN_XYZ, seed=seed)


def label_array() -> np.ndarray:
    """A (z, y, x) uint8 label on the T2 grid with :data:`NUM_TUMOUR_VOXELS` ones."""
    array = np.zeros(tuple(reversed(T2_SIZE_XYZ)), dtype=np.uint8)
    array[1:3, 4:7, 2:4] = 1
    assert int(array.sum()) == NUM_TUMOUR_VOXELS
    return array


def label_image(array: np.ndarray | None = None, **geometry: tuple[float, ...]) -> sitk.Image:
    """A label on the T2 grid (``geometry`` overrides ``spacing_xyz`` / ``origin_xyz`` / ``direction``)."""
    array = label_array() if array is None else array
    spacing = geometry.pop("spacing_xyz", T2_SPACING_XYZ)
    origin = geometry.pop("origin_xyz", T2_ORIGIN_XYZ)
    direction = geometry.pop("direction", None)
    assert not geometry, geometry
    size = tuple(reversed(array.shape))
    return make_image(size, spacing, origin, array=array, direction=direction)


class CohortBuilder:
    """Writes ``root/cases/<case_id>/...`` and ``root/clinical.csv``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases = root / "cases"
        self.cases.mkdir(parents=True)

    def case(
        self, case_id: str, *, t1: bool = True, t2: bool = True, label: bool = True, suffix: str = ".nii.gz"
    ) -> Path:
        """A good case (the parts asked for); returns its folder."""
        folder = self.cases / case_id
        folder.mkdir()
        if t1:
            sitk.WriteImage(t1_image(), str(folder / f"t1{suffix}"))
        if t2:
            sitk.WriteImage(t2_image(), str(folder / f"t2{suffix}"))
        if label:
            sitk.WriteImage(label_image(), str(folder / f"label{suffix}"))
        return folder

    def write(self, case_id: str, name: str, image: sitk.Image) -> Path:
        """Write (or overwrite) one file of a case."""
        path = self.cases / case_id / name
        path.parent.mkdir(exist_ok=True)
        sitk.WriteImage(image, str(path))
        return path

    def clinical(self, text: str) -> Path:
        """Write ``clinical.csv``."""
        path = self.root / "clinical.csv"
        path.write_text(text)
        return path
