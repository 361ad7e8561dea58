"""Small DICOM studies written by the tests themselves (npcseg.dicom.write), for the import tests.

Identifiers are recognisable strings (:data:`PATIENT_ID`, :data:`PATIENT_NAME`, :data:`STUDY_DATE`) so that tests
can check that none of them leaks into logs, messages or the cohort.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.uid import generate_uid
from scipy.spatial.transform import Rotation

from npcseg.dicom.write import SeriesAttributes, write_series

PATIENT_ID = "PID9137"
PATIENT_NAME = "Zorglub^Hermione"
STUDY_DATE = "19990412"


def oblique_direction() -> tuple[float, ...]:
    """A right-handed rotation far from the axes (row-major 3 x 3)."""
    matrix = Rotation.from_euler("xyz", [23.0, -17.0, 38.0], degrees=True).as_matrix()
    return tuple(float(v) for v in matrix.ravel())


def integer_image(
    shape_zyx: tuple[int, int, int] = (6, 12, 10),
    spacing_xyz: tuple[float, float, float] = (0.8, 0.9, 3.0),
    origin_xyz: tuple[float, float, float] = (-40.25, 12.5, -30.0),
    direction: tuple[float, ...] | None = None,
    seed: int = 0,
) -> sitk.Image:
    """An int16 image of random values in [-500, 2500] with the given geometry."""
    array = np.random.default_rng(seed).integers(-500, 2500, size=shape_zyx).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin_xyz)
    if direction is not None:
        image.SetDirection(direction)
    return image


class StudyWriter:
    """Writes the series of one study (shared study and frame-of-reference UIDs) under ``root``."""

    def __init__(self, root: Path, *, patient_id: str = PATIENT_ID, patient_name: str = PATIENT_NAME) -> None:
        self.root = Path(root)
        self.attributes = SeriesAttributes(
            patient_id=patient_id,
            patient_name=patient_name,
            study_date=STUDY_DATE,
            study_instance_uid=generate_uid(),
            frame_of_reference_uid=generate_uid(),
        )

    def series(
        self, image: sitk.Image, description: str, number: int, folder: str | None = None, **extra: object
    ) -> list[Path]:
        attributes = dataclasses.replace(
            self.attributes, series_description=description, series_number=number, extra=extra
        )
        return write_series(image, self.root / (folder or f"s{number}"), attributes)


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mtime_ns) of every file under ``root`` (to prove a tree was not modified)."""
    return {
        str(path.relative_to(root)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def assert_same_geometry(actual: sitk.Image, expected: sitk.Image, tolerance: float = 1e-4) -> None:
    assert actual.GetSize() == expected.GetSize()
    np.testing.assert_allclose(actual.GetSpacing(), expected.GetSpacing(), atol=tolerance, rtol=0)
    np.testing.assert_allclose(actual.GetOrigin(), expected.GetOrigin(), atol=tolerance, rtol=0)
    np.testing.assert_allclose(actual.GetDirection(), expected.GetDirection(), atol=tolerance, rtol=0)
