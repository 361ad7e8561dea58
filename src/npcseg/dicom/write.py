"""Writing a 3D image as a DICOM MR series (one file per slice) with pydicom.

Each slice ``k`` gets ``ImagePositionPatient = origin + k * spacing_z * n`` (``n`` the image's third direction
column), ``ImageOrientationPatient`` from the first two direction columns, ``PixelSpacing = (spacing_y,
spacing_x)``, ``SliceThickness = SpacingBetweenSlices = spacing_z``, and new SOP instance UIDs (a new series UID,
and new study / frame-of-reference UIDs unless the caller gives them). Pixels are stored as signed 16-bit values
with ``RescaleSlope`` / ``RescaleIntercept``: an integer image whose values fit in ``int16`` is stored exactly
(slope 1, intercept 0); any other image is scaled linearly onto the 16-bit range (a quantisation error of at most
half a step, ``(max - min) / 65535 / 2``).

:mod:`npcseg.dicom.volume` reads such a series back on the same grid when the direction is right-handed
(``det = +1``, as DICOM stacks are read); a left-handed image comes back flipped along z, sampling the same
physical points.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from npcseg.io.atomic import atomic_path
from npcseg.io.volume import Grid

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
"""MR Image Storage SOP class."""


@dataclass(frozen=True)
class SeriesAttributes:
    """Patient, study and series attributes of a written series (the caller's; nothing is invented but UIDs).

    Attributes:
        patient_id: ``PatientID``.
        patient_name: ``PatientName``.
        study_instance_uid: ``StudyInstanceUID``; a new UID when ``None`` (pass the same value to put several
            series in one study).
        frame_of_reference_uid: ``FrameOfReferenceUID``; a new UID when ``None`` (series of one study that share
            patient coordinates should share it).
        study_date: ``StudyDate`` (``YYYYMMDD``; may be empty).
        study_description: ``StudyDescription``.
        series_description: ``SeriesDescription`` (what :mod:`npcseg.dicom.mapping` reads to name the sequence).
        series_number: ``SeriesNumber``.
        modality: ``Modality``.
        extra: further attributes by keyword, set on every slice (``EchoTime``, ``ContrastBolusAgent``, ...).
    """

    patient_id: str = "ANONYMOUS"
    patient_name: str = "Anonymous"
    study_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int = 1
    modality: str = "MR"
    extra: Mapping[str, Any] = field(default_factory=dict)


def pixel_rescale(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored ``int16`` values and ``(slope, intercept)`` with ``value = stored * slope + intercept``.

    Integer arrays within the ``int16`` range are stored unchanged (slope 1, intercept 0); others are mapped
    linearly from ``[min, max]`` onto ``[-32768, 32767]``.
    """
    if array.size == 0:
        return array.astype(np.int16), 1.0, 0.0
    if not np.all(np.isfinite(array)):
        raise ValueError("the image holds NaN or infinite values, which DICOM cannot store")
    low, high = float(array.min()), float(array.max())
    is_integer = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)
    if is_integer and low >= -32768 and high <= 32767:
        return array.astype(np.int16), 1.0, 0.0
    if high == low:
        return np.zeros(array.shape, np.int16), 1.0, low
    slope = (high - low) / 65535.0
    intercept = low + 32768.0 * slope
    stored = np.clip(np.rint((array.astype(np.float64) - intercept) / slope), -32768, 32767).astype(np.int16)
    return stored, slope, intercept


def write_series(
    image: sitk.Image, folder: Path, attributes: SeriesAttributes = SeriesAttributes(), *, prefix: str = "IM"
) -> list[Path]:
    """Write ``image`` as an MR series of one file per slice into ``folder``.

    Args:
        image: a 3D scalar image (any pixel type; see :func:`pixel_rescale`).
        folder: the output folder (created); it must not already hold files named ``<prefix>*.dcm``.
        attributes: patient, study and series attributes.
        prefix: file names are ``<prefix>0001.dcm``, ``<prefix>0002.dcm``, ... in slice order.

    Returns:
        The files in slice order (file ``k`` holds array slice ``k``).

    Raises:
        ValueError: for a non-3D or non-scalar image, non-finite values, or a folder that already holds a series.
    """
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"expected a 3D scalar image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)"
        )
    folder = Path(folder)
    if folder.is_dir() and any(folder.glob(f"{prefix}*.dcm")):
        raise ValueError(f"{folder}: already holds {prefix}*.dcm files; write each series into an empty folder")
    grid = Grid.from_image(image)
    stored, slope, intercept = pixel_rescale(sitk.GetArrayFromImage(image))
    direction = grid.direction_matrix
    row, column, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    series_uid = generate_uid()
    study_uid = attributes.study_instance_uid or generate_uid()
    frame_uid = attributes.frame_of_reference_uid or generate_uid()
    now = datetime.datetime.now()
    paths = []
    for index in range(stored.shape[0]):
        position = np.asarray(grid.origin_xyz) + index * grid.spacing_xyz[2] * normal
        dataset = _slice_dataset(attributes, study_uid, series_uid, frame_uid, now)
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [_ds(v) for v in position]
        dataset.ImageOrientationPatient = [_ds(v) for v in (*row, *column)]
        dataset.SliceLocation = _ds(float(position @ normal))
        dataset.PixelSpacing = [_ds(grid.spacing_xyz[1]), _ds(grid.spacing_xyz[0])]
        dataset.SliceThickness = _ds(grid.spacing_xyz[2])
        dataset.SpacingBetweenSlices = _ds(grid.spacing_xyz[2])
        dataset.Rows, dataset.Columns = int(stored.shape[1]), int(stored.shape[2])
        dataset.RescaleSlope = _ds(slope)
        dataset.RescaleIntercept = _ds(intercept)
        dataset.PixelData = np.ascontiguousarray(stored[index]).astype("<i2").tobytes()
        path = folder / f"{prefix}{index + 1:04d}.dcm"
        with atomic_path(path) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
        paths.append(path)
    return paths


SERIES_DESCRIPTIONS = {"t2": "T2", "t1": "T1", "t1c": "T1 +C"}
"""SeriesDescription written for each cohort sequence (the default mapping reads them back)."""


def export_cases(path: Path, out: Path, *, include_label: bool = True) -> dict[str, list[Path]]:
    """Write every case of a cohort (or one case folder) as DICOM: one study per case, one series per sequence.

    ``OUT/<case_id>/<sequence>/IM0001.dcm ...`` with ``PatientID`` and ``PatientName`` set to the case id, one
    study and one frame of reference per case (the sequences of a case share patient coordinates), series
    descriptions from :data:`SERIES_DESCRIPTIONS`; with ``include_label``, a case's label becomes
    ``OUT/<case_id>/RTSTRUCT.dcm`` (ROI ``GTV``) referencing its T2 series.

    Returns:
        Case id -> the files written.

    Raises:
        FileNotFoundError: a missing cohort or case folder.
        ValueError: an output folder that already holds a series, or a label off the T2 grid.
    """
    from npcseg.io.cohort import SEQUENCES, cases_of
    from npcseg.io.images import read_image

    written: dict[str, list[Path]] = {}
    for case in cases_of(Path(path)):
        attributes = SeriesAttributes(
            patient_id=case.case_id,
            patient_name=f"{case.case_id}^",  # family name only (DICOM PN: components split by ^)
            study_instance_uid=generate_uid(),
            frame_of_reference_uid=generate_uid(),
            study_description=case.case_id,
        )
        files: list[Path] = []
        series_files: dict[str, list[Path]] = {}
        for number, sequence in enumerate(SEQUENCES, start=1):
            if sequence not in case.images:
                continue
            series = dataclasses.replace(
                attributes, series_description=SERIES_DESCRIPTIONS[sequence], series_number=number
            )
            series_files[sequence] = write_series(
                read_image(case.images[sequence]), Path(out) / case.case_id / sequence, series
            )
            files += series_files[sequence]
        if include_label and case.label is not None and "t2" in series_files:
            from npcseg.dicom.rtstruct import write_rtstruct

            rtstruct = Path(out) / case.case_id / "RTSTRUCT.dcm"
            write_rtstruct(read_image(case.label), series_files["t2"], rtstruct, roi_name="GTV")
            files.append(rtstruct)
        written[case.case_id] = files
    return written


def _slice_dataset(
    attributes: SeriesAttributes, study_uid: str, series_uid: str, frame_uid: str, now: datetime.datetime
) -> FileDataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = MR_IMAGE_STORAGE
    dataset.SOPInstanceUID = sop_uid
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.FrameOfReferenceUID = frame_uid
    dataset.PositionReferenceIndicator = ""
    dataset.PatientID = attributes.patient_id
    dataset.PatientName = attributes.patient_name
    dataset.PatientBirthDate = ""
    dataset.PatientSex = ""
    dataset.StudyDate = attributes.study_date
    dataset.StudyTime = ""
    dataset.StudyID = ""
    dataset.AccessionNumber = ""
    dataset.ReferringPhysicianName = ""
    dataset.StudyDescription = attributes.study_description
    dataset.SeriesDescription = attributes.series_description
    dataset.SeriesNumber = attributes.series_number
    dataset.Modality = attributes.modality
    dataset.Manufacturer = "npcseg"
    dataset.ContentDate = now.strftime("%Y%m%d")
    dataset.ContentTime = now.strftime("%H%M%S")
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.ScanningSequence = "RM"
    dataset.SequenceVariant = "NONE"
    dataset.ScanOptions = ""
    dataset.MRAcquisitionType = "3D"
    dataset.EchoTime = None
    dataset.RepetitionTime = None
    dataset.EchoTrainLength = None
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    for keyword, value in attributes.extra.items():
        if keyword not in pydicom.datadict.keyword_dict:
            raise ValueError(f"unknown DICOM attribute keyword {keyword!r} in extra attributes")
        setattr(dataset, keyword, value)
    return dataset


def _ds(value: float) -> DSfloat:
    """A decimal string of at most 16 characters holding as many digits of ``value`` as fit."""
    return DSfloat(float(value), auto_format=True)
