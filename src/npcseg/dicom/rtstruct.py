"""RT Structure Sets (RTSTRUCT): a mask as planar contours for planning systems, and back.

Written with pydicom alone. The structure set attaches to the patient and study of the referenced image series: it
copies PatientName, PatientID, PatientBirthDate, PatientSex and the study identification (StudyInstanceUID,
StudyDate, StudyTime, AccessionNumber, ReferringPhysicianName, StudyID) and no other patient data.

Holes: every boundary ring of a slice (outer boundaries and the boundaries of holes, see
:mod:`npcseg.dicom.contours`) is written as its own ``CLOSED_PLANAR`` contour. Planning systems combine the contours
of one ROI on one slice by the even-odd (XOR) rule, which restores the holes; :func:`read_rtstruct` does the same.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from npcseg import __version__
from npcseg.dicom.contours import ReferenceSeries, contours_to_mask, grid_mismatch, mask_to_contours
from npcseg.io.atomic import atomic_path
from npcseg.io.volume import Grid, Volume

logger = logging.getLogger(__name__)

PATIENT_KEYWORDS: tuple[str, ...] = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
"""The patient attributes copied from the referenced series (all type 2: written empty when absent)."""

STUDY_KEYWORDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)
"""The study attributes copied from the referenced series."""

DETACHED_STUDY_MANAGEMENT_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"
"""ReferencedSOPClassUID of RTReferencedStudySequence, the value planning systems expect."""

INTERPRETED_TYPES: tuple[str, ...] = ("GTV", "CTV", "PTV", "ORGAN", "AVOIDANCE", "EXTERNAL", "CONTROL")
"""RTROIInterpretedType values accepted by :func:`write_rtstruct`."""


def write_rtstruct(
    mask: sitk.Image,
    series_files: Sequence[Path] | ReferenceSeries,
    path: Path,
    *,
    roi_name: str = "GTV",
    roi_colour: tuple[int, int, int] = (255, 0, 0),
    algorithm_name: str = "npcseg",
    interpreted_type: str = "GTV",
) -> None:
    """Write ``mask`` as one ROI of a new RT Structure Set referencing an image series (atomically).

    Args:
        mask: a mask on the grid of the series (nonzero is the ROI; several labels are merged).
        series_files: the series' image files in slice order (file ``k`` is mask slice ``k``), or the series read.
        path: the ``.dcm`` file to write.
        roi_name: ROIName of the structure.
        roi_colour: ROIDisplayColor as 0-255 RGB.
        algorithm_name: ROIGenerationDescription prefix, followed by the package version.
        interpreted_type: RTROIInterpretedType, one of :data:`INTERPRETED_TYPES`.

    Raises:
        ValueError: the mask's grid is not the series grid, or an argument is out of range.
    """
    series = series_files if isinstance(series_files, ReferenceSeries) else ReferenceSeries.read(series_files)
    if interpreted_type not in INTERPRETED_TYPES:
        raise ValueError(f"interpreted type {interpreted_type!r} is not one of {INTERPRETED_TYPES}")
    if len(roi_colour) != 3 or not all(0 <= value <= 255 for value in roi_colour):
        raise ValueError(f"ROI colour {roi_colour} is not an RGB triple in 0-255")
    grid = Grid.from_image(mask)
    mismatch = grid_mismatch(grid, series.grid)
    if mismatch is not None:
        raise ValueError(f"the mask is not on the grid of series {series.files[0].parent}: {mismatch}")
    contours = mask_to_contours(sitk.GetArrayViewFromImage(mask) != 0, series.grid)
    if not contours:
        logger.warning("%s: the mask is empty; the ROI %r has no contours", path, roi_name)
    dataset = _structure_set(series, roi_name=roi_name, algorithm=f"{algorithm_name} {__version__}")
    dataset.ROIContourSequence = DicomSequence([_roi_contour(series, contours, roi_colour)])
    dataset.RTROIObservationsSequence = DicomSequence([_observation(interpreted_type)])
    with atomic_path(Path(path)) as temporary:
        dataset.save_as(temporary, enforce_file_format=True)


def _structure_set(series: ReferenceSeries, *, roi_name: str, algorithm: str) -> Dataset:
    """The dataset with every module except the contours and observations."""
    reference = series.first
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sop_instance_uid = generate_uid()

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian

    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.SOPClassUID = RTStructureSetStorage
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.InstanceCreationDate, dataset.InstanceCreationTime = date, time
    for keyword in PATIENT_KEYWORDS + STUDY_KEYWORDS:
        setattr(dataset, keyword, reference.get(keyword, ""))
    dataset.Modality = "RTSTRUCT"
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SeriesNumber = 9001
    dataset.SeriesDescription = f"{roi_name} ({algorithm})"[:64]
    dataset.SeriesDate, dataset.SeriesTime = date, time
    dataset.OperatorsName = ""
    dataset.Manufacturer = "npcseg"
    dataset.ManufacturerModelName = "npcseg"
    dataset.SoftwareVersions = __version__
    dataset.InstanceNumber = 1
    dataset.StructureSetLabel = roi_name[:16]
    dataset.StructureSetName = roi_name[:64]
    dataset.StructureSetDate, dataset.StructureSetTime = date, time

    contour_images = [_image_reference(header) for header in series.headers]
    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = reference.SeriesInstanceUID
    referenced_series.ContourImageSequence = DicomSequence(contour_images)
    referenced_study = Dataset()
    referenced_study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT_SOP_CLASS
    referenced_study.ReferencedSOPInstanceUID = reference.StudyInstanceUID
    referenced_study.RTReferencedSeriesSequence = DicomSequence([referenced_series])
    frame_of_reference = Dataset()
    frame_of_reference.FrameOfReferenceUID = series.frame_of_reference_uid
    frame_of_reference.RTReferencedStudySequence = DicomSequence([referenced_study])
    dataset.ReferencedFrameOfReferenceSequence = DicomSequence([frame_of_reference])

    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = series.frame_of_reference_uid
    roi.ROIName = roi_name[:64]
    roi.ROIGenerationAlgorithm = "AUTOMATIC"
    roi.ROIGenerationDescription = algorithm[:64]
    dataset.StructureSetROISequence = DicomSequence([roi])
    return dataset


def _image_reference(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item


def _roi_contour(
    series: ReferenceSeries, contours: dict[int, list[np.ndarray]], roi_colour: tuple[int, int, int]
) -> Dataset:
    item = Dataset()
    item.ReferencedROINumber = 1
    item.ROIDisplayColor = [int(value) for value in roi_colour]
    contour_items: list[Dataset] = []
    for k in sorted(contours):
        for ring in contours[k]:
            contour = Dataset()
            contour.ContourImageSequence = DicomSequence([_image_reference(series.headers[k])])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(ring)
            contour.ContourNumber = len(contour_items) + 1
            contour.ContourData = [_decimal_string(value) for value in ring.ravel()]
            contour_items.append(contour)
    if contour_items:
        item.ContourSequence = DicomSequence(contour_items)
    return item


def _observation(interpreted_type: str) -> Dataset:
    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.RTROIInterpretedType = interpreted_type
    observation.ROIInterpreter = ""
    return observation


def _decimal_string(value: float) -> str:
    """A DICOM DS value rounded to 0.1 µm (at most 16 characters for coordinates up to 10 km)."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def matching_names(available: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The names in ``available`` that one of ``patterns`` matches: equal ignoring case, or a full regex match
    ignoring case (``"gtv.*"`` matches ``GTVp`` and ``GTV_nx``)."""
    matches = []
    for name in available:
        for pattern in patterns:
            if name.casefold() == pattern.casefold():
                matches.append(name)
                break
            try:
                if re.fullmatch(pattern, name, flags=re.IGNORECASE):
                    matches.append(name)
                    break
            except re.error:
                continue
    return matches


def rtstruct_roi_names(path: Path) -> list[str]:
    """The ROI names of an RT Structure Set, in file order."""
    return [str(roi.ROIName) for roi in _read_structure_set(Path(path)).get("StructureSetROISequence", [])]


def read_rtstruct(
    path: Path,
    reference: Sequence[Path] | ReferenceSeries | sitk.Image,
    roi_names: Sequence[str],
    *,
    display_name: str | None = None,
) -> sitk.Image:
    """Rasterise ROIs of an RT Structure Set onto the grid of a reference image.

    Each matching ROI is filled slice by slice with the even-odd rule over its contours (so holes drawn as inner
    contours stay holes); the result is the union of the matching ROIs.

    Args:
        path: the RTSTRUCT file.
        reference: the image series the contours were drawn on (files in slice order, or read), or an image on its
            grid. With a series, the ROIs' frame of reference must be the series'.
        roi_names: names or regular expressions matched against ROIName ignoring case (see :func:`matching_names`).
        display_name: how messages and warnings name the file (default: its path). Importers pass a neutral name,
            since source paths often hold patient names.

    Returns:
        A ``uint8`` mask (0/1) on the reference grid.

    Raises:
        ValueError: the file is not an RTSTRUCT, no ROI matches (the message lists the ROI names available), the
            frames of reference differ, or no contour of the matching ROIs lies on a slice of the reference.
    """
    path = Path(path)
    shown = display_name or str(path)
    dataset = _read_structure_set(path)
    if isinstance(reference, sitk.Image):
        grid, frame_of_reference = Grid.from_image(reference), None
    else:
        series = reference if isinstance(reference, ReferenceSeries) else ReferenceSeries.read(reference)
        grid, frame_of_reference = series.grid, series.frame_of_reference_uid
    rois = {int(roi.ROINumber): roi for roi in dataset.get("StructureSetROISequence", [])}
    names = [str(roi.ROIName) for roi in rois.values()]
    selected = set(matching_names(names, roi_names))
    if not selected:
        raise ValueError(f"{shown}: no ROI matches {list(roi_names)}; ROIs available: {names}")
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    for roi_contour in dataset.get("ROIContourSequence", []):
        roi = rois.get(int(roi_contour.ReferencedROINumber))
        if roi is None or str(roi.ROIName) not in selected:
            continue
        roi_frame = str(roi.get("ReferencedFrameOfReferenceUID", ""))
        if frame_of_reference is not None and roi_frame and roi_frame != frame_of_reference:
            raise ValueError(
                f"{shown}: ROI {roi.ROIName!r} is in frame of reference {roi_frame}, "
                f"the reference series in {frame_of_reference}"
            )
        rings = [
            np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)
            for contour in roi_contour.get("ContourSequence", [])
            if contour.get("ContourGeometricType", "CLOSED_PLANAR") in ("CLOSED_PLANAR", "CLOSED_PLANAR_XOR")
        ]
        if rings:
            mask |= contours_to_mask(rings, grid, source=f"{shown} ROI {roi.ROIName!r}")
    return Volume(array=mask.astype(np.uint8), grid=grid).to_image()


def _read_structure_set(path: Path) -> Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: RTSTRUCT file not found")
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable DICOM file ({error})") from error
    if dataset.get("SOPClassUID") != RTStructureSetStorage and dataset.get("Modality") != "RTSTRUCT":
        raise ValueError(f"{path}: not an RT Structure Set (Modality {dataset.get('Modality')!r})")
    return dataset
