"""Finding DICOM series in a folder tree: read every file's header (never its pixels) and group by series.

Files may have any names (or none of the usual ``.dcm`` endings) and any folder layout; a file that is not DICOM
(no ``DICM`` preamble) is skipped and counted. Image files are grouped by ``(StudyInstanceUID,
SeriesInstanceUID)``; RT Structure Set files are collected apart for :mod:`npcseg.dicom.importer`. Headers are read
with pydicom's ``stop_before_pixels``, so scanning a study costs a few milliseconds per file.

Patient identifiers (``PatientID``, ``PatientName``) are kept on :class:`DicomSeries` for grouping only; messages
name a series by :attr:`DicomSeries.label` (number and description), which holds no patient data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

logger = logging.getLogger(__name__)

RTSTRUCT_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.481.3"
"""RT Structure Set Storage."""
DICOMDIR_SOP_CLASS_UID = "1.2.840.10008.1.3.10"
"""Media Storage Directory Storage (a DICOMDIR index, not an image)."""


@dataclass(frozen=True)
class SliceHeader:
    """The geometry-related header fields of one image file.

    Attributes:
        path: the file (absolute).
        sop_instance_uid: the image's unique id.
        instance_number: ``InstanceNumber`` or ``None``.
        position_mm: ``ImagePositionPatient``: LPS position (mm) of the centre of the first transmitted pixel, or
            ``None`` when absent.
        orientation: ``ImageOrientationPatient``: row direction cosines then column direction cosines (6 values),
            or ``None`` when absent.
        pixel_spacing_mm: ``PixelSpacing``: (distance between rows, distance between columns) in mm, or ``None``.
        rows: number of rows (the y size).
        columns: number of columns (the x size).
        slice_thickness_mm: ``SliceThickness`` or ``None``.
        spacing_between_slices_mm: ``SpacingBetweenSlices`` or ``None``.
        num_frames: ``NumberOfFrames`` (1 for a classic single-frame image).
        rescale_slope: ``RescaleSlope`` (1 when absent).
        rescale_intercept: ``RescaleIntercept`` (0 when absent).
    """

    path: Path
    sop_instance_uid: str
    instance_number: int | None
    position_mm: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing_mm: tuple[float, float] | None
    rows: int
    columns: int
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    num_frames: int
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0


@dataclass(frozen=True)
class DicomSeries:
    """One image series: its identifying and descriptive attributes and its files (in no particular order).

    Attributes:
        study_instance_uid: ``StudyInstanceUID``.
        series_instance_uid: ``SeriesInstanceUID``.
        frame_of_reference_uid: ``FrameOfReferenceUID`` (empty when absent).
        modality: ``Modality`` (``MR``, ``CT``, ...).
        series_number: ``SeriesNumber`` or ``None``.
        series_description: ``SeriesDescription`` (may be empty).
        protocol_name: ``ProtocolName`` (may be empty).
        contrast_bolus_agent: ``ContrastBolusAgent`` (empty when no contrast was recorded).
        scanning_sequence: ``ScanningSequence`` values joined by ``\\`` (``SE``, ``GR``, ``IR``, ...).
        echo_time_ms: ``EchoTime`` or ``None``.
        repetition_time_ms: ``RepetitionTime`` or ``None``.
        patient_id: ``PatientID`` (identifying: for grouping only, never logged).
        study_date: ``StudyDate`` (identifying: for ``--keep-identifiers`` case ids only).
        slices: the header of every file of the series.
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    modality: str
    series_number: int | None
    series_description: str
    protocol_name: str
    contrast_bolus_agent: str
    scanning_sequence: str
    echo_time_ms: float | None
    repetition_time_ms: float | None
    patient_id: str
    study_date: str
    slices: tuple[SliceHeader, ...]

    @property
    def label(self) -> str:
        """How messages name the series: ``series 3 'T2 TSE AX' (MR, 24 files)`` -- no patient data."""
        number = "?" if self.series_number is None else str(self.series_number)
        description = self.series_description or self.protocol_name or "no description"
        return f"series {number} '{description}' ({self.modality}, {len(self.slices)} files)"

    @property
    def files(self) -> tuple[Path, ...]:
        """The series' files in scan order."""
        return tuple(header.path for header in self.slices)


@dataclass(frozen=True)
class DicomScan:
    """What a folder tree holds.

    Attributes:
        series: every image series, sorted by study, series number and series UID.
        rtstructs: RT Structure Set files.
        num_files: files looked at.
        num_not_dicom: files skipped because they are not DICOM (or have no series UID, such as a DICOMDIR).
    """

    series: tuple[DicomSeries, ...]
    rtstructs: tuple[Path, ...]
    num_files: int
    num_not_dicom: int


def scan_folder(root: Path) -> DicomScan:
    """Read the header of every file under ``root`` (recursively, any names) and group images by series.

    Args:
        root: a folder (or a single file).

    Raises:
        FileNotFoundError: when ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: DICOM folder not found")
    groups: dict[tuple[str, str], list[tuple[Any, SliceHeader]]] = {}
    rtstructs: list[Path] = []
    num_files = num_not_dicom = 0
    for path in _files_under(root):
        num_files += 1
        dataset = _read_header(path)
        if dataset is None or not dataset.get("SeriesInstanceUID"):
            num_not_dicom += 1
            continue
        if str(dataset.get("SOPClassUID", "")) == RTSTRUCT_SOP_CLASS_UID or dataset.get("Modality") == "RTSTRUCT":
            rtstructs.append(path)
            continue
        if "Rows" not in dataset or "Columns" not in dataset:  # reports, presentation states, ...
            num_not_dicom += 1
            continue
        key = (str(dataset.get("StudyInstanceUID", "")), str(dataset.SeriesInstanceUID))
        groups.setdefault(key, []).append((dataset, _slice_header(path, dataset)))
    series = [_series_of(members) for members in groups.values()]
    series.sort(key=lambda s: (s.study_instance_uid, s.series_number or 0, s.series_instance_uid))
    logger.info(
        "scanned %d file(s): %d series, %d RTSTRUCT, %d not DICOM",
        num_files,
        len(series),
        len(rtstructs),
        num_not_dicom,
    )
    return DicomScan(
        series=tuple(series), rtstructs=tuple(sorted(rtstructs)), num_files=num_files, num_not_dicom=num_not_dicom
    )


def _files_under(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root.resolve()
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path.resolve()


_READ_ERRORS = (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError, OverflowError)
_NOT_DICOM_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".json", ".yaml", ".yml", ".csv", ".txt", ".png", ".jpg")


def _read_header(path: Path) -> Any:
    """The dataset without pixel data, or ``None`` when the file is not DICOM.

    A file without the ``DICM`` preamble (old archives) is read a second time with ``force=True`` and accepted
    only when it holds a SOP class and a series UID; files with the endings of common non-DICOM formats are not.
    """
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        if path.name.lower().endswith(_NOT_DICOM_SUFFIXES):
            return None
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            if "SOPClassUID" not in dataset or "SeriesInstanceUID" not in dataset:
                return None
        except _READ_ERRORS:
            return None
    except _READ_ERRORS:
        return None
    if str(getattr(dataset.get("file_meta", None), "MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS_UID:
        return None
    return dataset


def _slice_header(path: Path, dataset: Any) -> SliceHeader:
    return SliceHeader(
        path=path,
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        instance_number=_int_or_none(dataset.get("InstanceNumber")),
        position_mm=_floats(dataset.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(dataset.get("ImageOrientationPatient"), 6),
        pixel_spacing_mm=_floats(dataset.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        rows=int(dataset.Rows),
        columns=int(dataset.Columns),
        slice_thickness_mm=_float_or_none(dataset.get("SliceThickness")),
        spacing_between_slices_mm=_float_or_none(dataset.get("SpacingBetweenSlices")),
        num_frames=_int_or_none(dataset.get("NumberOfFrames")) or 1,
        rescale_slope=_float_or_none(dataset.get("RescaleSlope")) or 1.0,
        rescale_intercept=_float_or_none(dataset.get("RescaleIntercept")) or 0.0,
    )


def _series_of(members: list[tuple[Any, SliceHeader]]) -> DicomSeries:
    first = members[0][0]
    scanning = first.get("ScanningSequence", "")
    if isinstance(scanning, pydicom.multival.MultiValue):
        scanning = "\\".join(str(value) for value in scanning)
    return DicomSeries(
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        series_instance_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        modality=str(first.get("Modality", "")),
        series_number=_int_or_none(first.get("SeriesNumber")),
        series_description=str(first.get("SeriesDescription", "") or "").strip(),
        protocol_name=str(first.get("ProtocolName", "") or "").strip(),
        contrast_bolus_agent=str(first.get("ContrastBolusAgent", "") or "").strip(),
        scanning_sequence=str(scanning or ""),
        echo_time_ms=_float_or_none(first.get("EchoTime")),
        repetition_time_ms=_float_or_none(first.get("RepetitionTime")),
        patient_id=str(first.get("PatientID", "") or ""),
        study_date=str(first.get("StudyDate", "") or ""),
        slices=tuple(header for _, header in members),
    )


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    if value is None or value == "":
        return None
    try:
        values = tuple(
            float(v) for v in (value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value])
        )
    except (TypeError, ValueError):
        return None
    return values if len(values) == count else None


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
