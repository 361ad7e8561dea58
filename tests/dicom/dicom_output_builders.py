"""Small synthetic DICOM MR series and masks for the RTSTRUCT / SEG tests (written with pydicom to tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from npcseg.io.volume import Grid, Volume

SPACING_XYZ = (0.7, 0.8, 3.0)
"""Anisotropic, with different row and column spacing, so swapped axes show."""

SHAPE_ZYX = (6, 64, 72)
"""Slices, rows, columns (rows != columns, so a transposition shows)."""

LEAKED_KEYWORDS = ("InstitutionName", "PatientAddress", "OtherPatientIDs", "PatientAge", "PatientWeight")
"""Patient and site data set in the fixture that no output may copy."""


def rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx for angles about x, y, z in degrees (a right-handed direction matrix)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ds_values(values: np.ndarray) -> list[str]:
    """Coordinates as DICOM decimal strings (8 decimals, well within 16 characters)."""
    return [f"{float(v):.8f}" for v in values]


def write_mr_series(
    folder: Path,
    *,
    direction: np.ndarray,
    origin_xyz: tuple[float, float, float] = (-30.0, -40.0, 12.5),
    shape_zyx: tuple[int, int, int] = SHAPE_ZYX,
    spacing_xyz: tuple[float, float, float] = SPACING_XYZ,
) -> tuple[list[Path], Grid]:
    """Write a single-frame MR series (slice k = file k) and return its files and grid.

    The grid is built from the values as written (rounded to 8 decimals), so it is the grid of the files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    orientation = np.round(np.concatenate([direction[:, 0], direction[:, 1]]), 8)
    rng = np.random.default_rng(0)
    files = []
    positions = []
    for k in range(shape_zyx[0]):
        position = np.round(np.asarray(origin_xyz) + k * spacing_xyz[2] * direction[:, 2], 8)
        positions.append(position)
        dataset = Dataset()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = MRImageStorage
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.SOPClassUID = MRImageStorage
        dataset.SpecificCharacterSet = "ISO_IR 192"
        dataset.PatientName = "Nguyễn^Văn"
        dataset.PatientID = "NPC-0042"
        dataset.PatientBirthDate = "19700101"
        dataset.PatientSex = "M"
        dataset.PatientAddress = "12 Secret Road"
        dataset.OtherPatientIDs = "HOSP-99"
        dataset.PatientAge = "054Y"
        dataset.PatientWeight = "70"
        dataset.InstitutionName = "Example Hospital"
        dataset.StudyInstanceUID = study_uid
        dataset.StudyDate, dataset.StudyTime = "20240102", "101500"
        dataset.AccessionNumber = "ACC123"
        dataset.ReferringPhysicianName = "Ref^Doctor"
        dataset.StudyID = "S1"
        dataset.StudyDescription = "Nasopharynx MRI"
        dataset.Modality = "MR"
        dataset.SeriesInstanceUID = series_uid
        dataset.SeriesNumber = 3
        dataset.InstanceNumber = k + 1
        dataset.FrameOfReferenceUID = frame_uid
        dataset.PositionReferenceIndicator = ""
        dataset.ImageOrientationPatient = ds_values(orientation)
        dataset.ImagePositionPatient = ds_values(position)
        dataset.PixelSpacing = [f"{spacing_xyz[1]}", f"{spacing_xyz[0]}"]  # row spacing (y), column spacing (x)
        dataset.SliceThickness = f"{spacing_xyz[2]}"
        dataset.Rows, dataset.Columns = shape_zyx[1], shape_zyx[2]
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
        dataset.PixelRepresentation = 0
        dataset.PixelData = rng.integers(0, 1000, shape_zyx[1:], dtype=np.uint16).tobytes()
        path = folder / f"slice_{k:03d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        files.append(path)
    direction_written = np.column_stack(
        [
            orientation[:3],
            orientation[3:],
            (positions[-1] - positions[0]) / np.linalg.norm(positions[-1] - positions[0]),
        ]
    )
    grid = Grid(
        size_xyz=(shape_zyx[2], shape_zyx[1], shape_zyx[0]),
        spacing_xyz=spacing_xyz,
        origin_xyz=tuple(float(v) for v in positions[0]),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction_written.ravel()),
    )
    return files, grid


def lesion_mask(shape_zyx: tuple[int, int, int] = SHAPE_ZYX) -> np.ndarray:
    """A (z, y, x) uint8 tumour-like mask: ellipses (radius up to 15 voxels) whose size varies by slice, a hole with an
    island inside it on slice 2, a second component on slice 3, and a component touching the image border on slice 4;
    slice 0 is empty."""
    num_slices, rows, columns = shape_zyx
    y, x = np.mgrid[:rows, :columns]
    mask = np.zeros(shape_zyx, dtype=np.uint8)
    for k in range(1, num_slices):
        scale = 1.0 - 0.2 * max(0.0, abs(k - 2.5) - 0.5)
        inside = ((y - 30) / (15 * scale)) ** 2 + ((x - 34) / (12 * scale)) ** 2 <= 1.0
        mask[k][inside] = 1
    hole = (y - 30) ** 2 + (x - 34) ** 2 <= 6**2
    island = (y - 30) ** 2 + (x - 34) ** 2 <= 2**2
    mask[2][hole] = 0
    mask[2][island] = 1
    mask[3][((y - 12) ** 2 + (x - 60) ** 2) <= 4**2] = 1
    mask[4][(y >= 55) & (x <= 5)] = 1
    return mask


def mask_image(mask: np.ndarray, grid: Grid) -> sitk.Image:
    """The mask as a SimpleITK image on ``grid``."""
    return Volume(array=mask, grid=grid).to_image()


def dice(first: np.ndarray, second: np.ndarray) -> float:
    """Dice coefficient of two masks (1.0 when both are empty)."""
    first, second = first != 0, second != 0
    total = int(first.sum() + second.sum())
    return 1.0 if total == 0 else 2.0 * int((first & second).sum()) / total


def read_series_with_itk(files: list[Path]) -> sitk.Image:
    """The series read by SimpleITK (an independent geometry reference)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(file) for file in files])
    return reader.Execute()


PATIENT_AND_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)
"""What a derived object (RTSTRUCT, SEG) must copy from its source series: the patient and study reference."""


def assert_new_object_of_same_patient(dataset: Dataset, files: list[Path], absent: tuple[str, ...]) -> None:
    """``dataset`` has UIDs of its own, copies the patient and study reference of the series ``files`` and holds
    none of ``absent`` (patient data it must not copy)."""
    source = header(files[0])
    input_uids = {str(header(file).SOPInstanceUID) for file in files} | {str(source.SeriesInstanceUID)}
    assert str(dataset.SOPInstanceUID) not in input_uids and str(dataset.SeriesInstanceUID) not in input_uids
    for keyword in PATIENT_AND_STUDY_KEYWORDS:
        assert dataset[keyword].value == source[keyword].value, keyword
    for keyword in absent:
        assert keyword not in dataset, keyword


def header(path: Path) -> Dataset:
    """A file's header without pixel data."""
    return pydicom.dcmread(path, stop_before_pixels=True)
