"""DICOM Segmentation writing (highdicom) and reading, on axial and oblique MR series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_output_builders import (
    LEAKED_KEYWORDS,
    SHAPE_ZYX,
    assert_new_object_of_same_patient,
    header,
    lesion_mask,
    mask_image,
    rotation,
    write_mr_series,
)

from npcseg import __version__
from npcseg.dicom.seg import read_seg, write_seg
from npcseg.io.volume import Grid

ORIENTATIONS = {"axial": np.eye(3), "oblique": rotation((-25.0, 15.0, 10.0))}


@pytest.fixture(params=sorted(ORIENTATIONS))
def series(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[Path], Grid]:
    """An MR series (files, grid) in each orientation."""
    return write_mr_series(tmp_path / request.param, direction=ORIENTATIONS[request.param])


def test_round_trip_is_exact_on_the_series_and_on_an_image_grid(
    series: tuple[list[Path], Grid], tmp_path: Path
) -> None:
    files, grid = series
    mask = lesion_mask()
    path = tmp_path / "out" / "case_seg.dcm"
    write_seg(mask_image(mask, grid), files, path)
    from_series = read_seg(path, files)
    assert Grid.from_image(from_series).mismatch(grid) is None
    assert np.array_equal(sitk.GetArrayFromImage(from_series), mask)
    from_image = read_seg(path, mask_image(np.zeros(SHAPE_ZYX, dtype=np.uint8), grid), ["gtv"])
    assert np.array_equal(sitk.GetArrayFromImage(from_image), mask)


def test_seg_describes_the_segment_and_copies_only_patient_and_study_identification(
    series: tuple[list[Path], Grid], tmp_path: Path
) -> None:
    files, grid = series
    path = tmp_path / "seg.dcm"
    write_seg(mask_image(lesion_mask(), grid), files, path, segment_label="GTVp")
    dataset = pydicom.dcmread(path)
    source = header(files[0])
    assert dataset.Modality == "SEG" and dataset.SegmentationType == "BINARY"
    assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    (segment,) = dataset.SegmentSequence
    assert segment.SegmentLabel == "GTVp" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"  # morphologically abnormal
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"  # tumour
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("npcseg", __version__)
    assert dataset.Manufacturer == "npcseg" and dataset.SoftwareVersions == __version__
    assert dataset.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert_new_object_of_same_patient(dataset, files, (*LEAKED_KEYWORDS, "StudyDescription"))
    referenced = {
        str(item.ReferencedSOPInstanceUID) for item in dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {str(header(file).SOPInstanceUID) for file in files}


def test_empty_mask_and_refusals(tmp_path: Path) -> None:
    files, grid = write_mr_series(tmp_path / "series", direction=np.eye(3))
    path = tmp_path / "seg.dcm"
    write_seg(mask_image(np.zeros(SHAPE_ZYX, dtype=np.uint8), grid), files, path)
    assert sitk.GetArrayFromImage(read_seg(path, files)).sum() == 0
    with pytest.raises(ValueError, match=r"no segment matches \['CTV'\]; segments: \['GTV'\]"):
        read_seg(path, files, ["CTV"])
    moved = mask_image(lesion_mask(), grid)
    moved.SetSpacing((0.7, 0.8, 2.0))
    with pytest.raises(ValueError, match=r"not on the grid of series .* spacing"):
        write_seg(moved, files, tmp_path / "bad.dcm")
    assert not (tmp_path / "bad.dcm").exists()
    with pytest.raises(ValueError, match="not a DICOM Segmentation"):
        read_seg(files[0], files)
    rotated, _ = write_mr_series(tmp_path / "rotated", direction=rotation((0.0, 0.0, 30.0)))
    with pytest.raises(ValueError, match="not in the plane or pixel spacing"):
        read_seg(path, rotated)
