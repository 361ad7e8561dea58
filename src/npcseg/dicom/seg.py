"""DICOM Segmentation (SEG) objects: a mask as a BINARY segmentation with highdicom, and back.

The segmentation references the image series it was computed on and copies only the patient (PatientName, PatientID,
PatientBirthDate, PatientSex) and study identification of that series, as the RT Structure Set does: highdicom would
copy the whole Patient and Study modules, so it is given headers stripped to the geometry and those attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from npcseg import __version__
from npcseg.dicom.contours import GRID_TOLERANCE_DIRECTION, ReferenceSeries, grid_mismatch
from npcseg.dicom.rtstruct import PATIENT_KEYWORDS, STUDY_KEYWORDS, matching_names
from npcseg.io.atomic import atomic_path
from npcseg.io.volume import Grid, Volume

logger = logging.getLogger(__name__)

SOURCE_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "InstanceNumber",
    "Modality",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "Rows",
    "Columns",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
"""Source-image attributes highdicom needs besides the patient and study identification."""


def write_seg(
    mask: sitk.Image,
    series_files: Sequence[Path] | ReferenceSeries,
    path: Path,
    *,
    segment_label: str = "GTV",
    algorithm_name: str = "npcseg",
    property_category: hd.sr.CodedConcept | Code = codes.SCT.MorphologicallyAbnormalStructure,
    property_type: hd.sr.CodedConcept | Code = codes.SCT.Tumor,
    series_number: int = 9002,
) -> None:
    """Write ``mask`` as a one-segment BINARY DICOM Segmentation of an image series (atomically).

    Args:
        mask: a mask on the grid of the series (nonzero is the segment; several labels are merged).
        series_files: the series' image files in slice order (file ``k`` is mask slice ``k``), or the series read.
        path: the ``.dcm`` file to write.
        segment_label: SegmentLabel.
        algorithm_name: AlgorithmName of the automatic segmentation (AlgorithmVersion is the package version).
        property_category: SegmentedPropertyCategoryCodeSequence (default SCT Morphologically Abnormal Structure).
        property_type: SegmentedPropertyTypeCodeSequence (default SCT Tumor).
        series_number: SeriesNumber of the new series.

    Raises:
        ValueError: the mask's grid is not the series grid.
    """
    series = series_files if isinstance(series_files, ReferenceSeries) else ReferenceSeries.read(series_files)
    mismatch = grid_mismatch(Grid.from_image(mask), series.grid)
    if mismatch is not None:
        raise ValueError(f"the mask is not on the grid of series {series.files[0].parent}: {mismatch}")
    pixels = (sitk.GetArrayFromImage(mask) != 0).astype(np.uint8)  # (frames = slices, rows, columns)
    if not pixels.any():
        logger.warning("%s: the mask is empty; the segment %r has no voxels", path, segment_label)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=property_category,
        segmented_property_type=property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    segmentation = hd.seg.Segmentation(
        source_images=[_stripped(header) for header in series.headers],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="npcseg",
        manufacturer_model_name="npcseg",
        software_versions=__version__,
        device_serial_number="0",
        series_description=f"{segment_label} ({algorithm_name} {__version__})"[:64],
    )
    with atomic_path(Path(path)) as temporary:
        segmentation.save_as(temporary)


def _stripped(header: Dataset) -> Dataset:
    """A copy of a source header with only the geometry, identification, patient and study attributes."""
    stripped = Dataset()
    for keyword in SOURCE_KEYWORDS + PATIENT_KEYWORDS + STUDY_KEYWORDS:
        if keyword in header:
            setattr(stripped, keyword, header[keyword].value)
        elif keyword in PATIENT_KEYWORDS + STUDY_KEYWORDS:
            setattr(stripped, keyword, "")
    return stripped


def read_seg(
    path: Path,
    reference: Sequence[Path] | ReferenceSeries | sitk.Image,
    segment_labels: Sequence[str] | None = None,
) -> sitk.Image:
    """Place the frames of a DICOM Segmentation on the grid of a reference image.

    Each frame is put on the slice its ImagePositionPatient lies on (frames must share the reference's in-plane
    orientation and pixel spacing and sit at whole-pixel offsets). BINARY, FRACTIONAL (at least half the maximum
    value counts) and LABELMAP segmentations are read.

    Args:
        path: the SEG file.
        reference: the image series (files in slice order, or read) or an image on its grid.
        segment_labels: SegmentLabels (names or regular expressions, ignoring case) whose union is returned; all
            segments when ``None``.

    Returns:
        A ``uint8`` mask (0/1) on the reference grid.

    Raises:
        ValueError: not a SEG, no segment matches (the message lists the labels), or frames off the reference grid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SEG file not found")
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable DICOM file ({error})") from error
    if dataset.get("Modality") != "SEG":
        raise ValueError(f"{path}: not a DICOM Segmentation (Modality {dataset.get('Modality')!r})")
    if isinstance(reference, sitk.Image):
        grid = Grid.from_image(reference)
    else:
        grid = (reference if isinstance(reference, ReferenceSeries) else ReferenceSeries.read(reference)).grid

    labels = {int(segment.SegmentNumber): str(segment.SegmentLabel) for segment in dataset.SegmentSequence}
    chosen = (
        set(labels.values()) if segment_labels is None else set(matching_names(list(labels.values()), segment_labels))
    )
    if not chosen:
        raise ValueError(f"{path}: no segment matches {list(segment_labels or [])}; segments: {list(labels.values())}")
    segment_numbers = [number for number, label in labels.items() if label in chosen]

    frames = dataset.pixel_array.reshape(int(dataset.get("NumberOfFrames", 1)), dataset.Rows, dataset.Columns)
    is_labelmap = dataset.get("SegmentationType") == "LABELMAP"
    maximum = float(dataset.get("MaximumFractionalValue", 1)) if dataset.SegmentationType == "FRACTIONAL" else 1.0
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    for frame_index, frame in enumerate(frames):
        if is_labelmap:
            inside = np.isin(frame, segment_numbers)
        else:
            segment = int(_frame_item(dataset, frame_index, "SegmentIdentificationSequence").ReferencedSegmentNumber)
            if segment not in segment_numbers:
                continue
            inside = frame >= 0.5 * maximum
        _place_frame(mask, inside, _frame_origin(dataset, frame_index, grid, path))
    return Volume(array=mask.astype(np.uint8), grid=grid).to_image()


def _frame_item(dataset: Dataset, frame_index: int, keyword: str) -> Dataset:
    """The first item of a functional group macro of one frame (per-frame first, then shared)."""
    per_frame = dataset.PerFrameFunctionalGroupsSequence[frame_index]
    if keyword in per_frame:
        return per_frame[keyword].value[0]
    return dataset.SharedFunctionalGroupsSequence[0][keyword].value[0]


def _frame_origin(dataset: Dataset, frame_index: int, grid: Grid, path: Path) -> tuple[int, int, int]:
    """Integer index ``(k, j, i)`` of a frame's first pixel on ``grid``; ``ValueError`` when it is off the grid."""
    plane = _frame_item(dataset, frame_index, "PlaneOrientationSequence")
    orientation = np.asarray([float(v) for v in plane.ImageOrientationPatient])
    spacing = [float(v) for v in _frame_item(dataset, frame_index, "PixelMeasuresSequence").PixelSpacing]
    direction = grid.direction_matrix
    same_plane = np.allclose(
        orientation, np.concatenate([direction[:, 0], direction[:, 1]]), atol=GRID_TOLERANCE_DIRECTION
    )
    same_spacing = np.allclose(spacing, [grid.spacing_xyz[1], grid.spacing_xyz[0]], rtol=1e-4, atol=1e-4)
    if not (same_plane and same_spacing):
        raise ValueError(f"{path}: frame {frame_index + 1} is not in the plane or pixel spacing of the reference grid")
    position = [float(v) for v in _frame_item(dataset, frame_index, "PlanePositionSequence").ImagePositionPatient]
    index_xyz = grid.physical_to_index(np.asarray(position))[0]
    rounded = np.round(index_xyz)
    if np.max(np.abs(index_xyz - rounded)) > 0.05:
        raise ValueError(f"{path}: frame {frame_index + 1} at {position} does not lie on a voxel of the reference grid")
    return int(rounded[2]), int(rounded[1]), int(rounded[0])


def _place_frame(mask: np.ndarray, inside: np.ndarray, origin_kji: tuple[int, int, int]) -> None:
    """OR a frame into ``mask`` at an integer offset, clipping what falls outside."""
    k, j, i = origin_kji
    if not 0 <= k < mask.shape[0]:
        return
    rows, columns = mask.shape[1:]
    j0, i0 = max(j, 0), max(i, 0)
    j1, i1 = min(j + inside.shape[0], rows), min(i + inside.shape[1], columns)
    if j1 > j0 and i1 > i0:
        mask[k, j0:j1, i0:i1] |= inside[j0 - j : j1 - j, i0 - i : i1 - i]
