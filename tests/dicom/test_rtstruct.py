"""RT Structure Set writing and reading, and the contour geometry under it, on axial and oblique MR series."""

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
    dice,
    header,
    lesion_mask,
    mask_image,
    read_series_with_itk,
    rotation,
    write_mr_series,
)
from pydicom.uid import RTStructureSetStorage

from npcseg.dicom.contours import ReferenceSeries, fill_polygons, mask_to_contours, slice_polygons
from npcseg.dicom.rtstruct import matching_names, read_rtstruct, rtstruct_roi_names, write_rtstruct
from npcseg.io.volume import Grid

ORIENTATIONS = {"axial": np.eye(3), "oblique": rotation((20.0, -12.0, 35.0))}


@pytest.fixture(params=sorted(ORIENTATIONS))
def series(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[Path], Grid]:
    """An MR series (files, grid) in each orientation."""
    return write_mr_series(tmp_path / request.param, direction=ORIENTATIONS[request.param])


def test_slice_polygons_fill_back_exactly_on_random_masks() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        mask = rng.random((13, 17)) < 0.55  # holes, islands in holes, diagonal contacts, border pixels
        assert np.array_equal(fill_polygons(slice_polygons(mask), mask.shape), mask)


def test_slice_polygons_give_an_inner_ring_for_a_hole() -> None:
    y, x = np.mgrid[:21, :21]
    ring = ((y - 10) ** 2 + (x - 10) ** 2 <= 64) & ((y - 10) ** 2 + (x - 10) ** 2 > 9)
    polygons = slice_polygons(ring)
    assert len(polygons) == 2
    assert all(not np.allclose(polygon[0], polygon[-1]) for polygon in polygons)  # closure implied, not repeated
    assert np.array_equal(fill_polygons(polygons, ring.shape), ring)


def test_reference_series_grid_matches_simpleitk(series: tuple[list[Path], Grid]) -> None:
    files, grid = series
    reference = ReferenceSeries.read(files)
    assert reference.grid.mismatch(grid, tolerance_mm=1e-6, tolerance_direction=1e-7) is None
    itk_grid = Grid.from_image(read_series_with_itk(files))
    assert reference.grid.mismatch(itk_grid, tolerance_mm=1e-6, tolerance_direction=1e-7) is None


def test_contour_points_lie_on_the_voxel_boundary_in_patient_coordinates(series: tuple[list[Path], Grid]) -> None:
    _, grid = series
    mask = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    mask[2, 10, 20] = 1  # one voxel: a diamond through the four edge midpoints
    contours = mask_to_contours(mask, grid)
    assert list(contours) == [2]
    (ring,) = contours[2]
    expected_index = {(19.5, 10.0), (20.5, 10.0), (20.0, 9.5), (20.0, 10.5)}
    index = grid.physical_to_index(ring)
    assert np.allclose(index[:, 2], 2.0)
    assert {(round(i, 6), round(j, 6)) for i, j in index[:, :2]} == expected_index
    centre = grid.index_to_physical(np.array([20.0, 10.0, 2.0]))[0]
    distances = np.linalg.norm(ring - centre, axis=1)
    assert np.allclose(np.sort(distances), np.sort([0.35, 0.35, 0.4, 0.4]))  # half the 0.7 x 0.8 mm pixel


def test_round_trip_restores_the_mask_with_holes_and_two_components(
    series: tuple[list[Path], Grid], tmp_path: Path
) -> None:
    files, grid = series
    mask = lesion_mask()
    path = tmp_path / "out" / "case_rtstruct.dcm"
    write_rtstruct(mask_image(mask, grid), files, path)
    restored = read_rtstruct(path, files, ["gtv"])
    assert Grid.from_image(restored).mismatch(grid) is None
    restored_array = sitk.GetArrayFromImage(restored)
    assert restored_array.dtype == np.uint8
    per_slice = [dice(mask[k], restored_array[k]) for k in range(SHAPE_ZYX[0])]
    assert dice(mask, restored_array) >= 0.98 and min(per_slice) >= 0.98
    assert np.array_equal(restored_array, mask)  # exact: see npcseg.dicom.contours


def test_rtstruct_is_valid_and_references_every_image(series: tuple[list[Path], Grid], tmp_path: Path) -> None:
    files, grid = series
    mask = lesion_mask()
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(mask_image(mask, grid), files, path, roi_name="GTVp", roi_colour=(0, 128, 255))
    dataset = pydicom.dcmread(path)
    headers = [header(file) for file in files]
    series_uids = [str(h.SOPInstanceUID) for h in headers]

    assert dataset.file_meta.MediaStorageSOPClassUID == RTStructureSetStorage
    assert dataset.SOPClassUID == RTStructureSetStorage and dataset.Modality == "RTSTRUCT"
    for keyword in ("StructureSetLabel", "StructureSetDate", "StructureSetTime", "SeriesNumber", "OperatorsName"):
        assert keyword in dataset
    frame = dataset.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    study = frame.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == headers[0].StudyInstanceUID
    referenced_series = study.RTReferencedSeriesSequence[0]
    assert referenced_series.SeriesInstanceUID == headers[0].SeriesInstanceUID
    assert [str(item.ReferencedSOPInstanceUID) for item in referenced_series.ContourImageSequence] == series_uids

    (roi,) = dataset.StructureSetROISequence
    assert (roi.ROINumber, roi.ROIName, roi.ROIGenerationAlgorithm) == (1, "GTVp", "AUTOMATIC")
    assert roi.ReferencedFrameOfReferenceUID == headers[0].FrameOfReferenceUID
    (observation,) = dataset.RTROIObservationsSequence
    assert (observation.ReferencedROINumber, observation.RTROIInterpretedType) == (1, "GTV")
    (roi_contour,) = dataset.ROIContourSequence
    assert list(roi_contour.ROIDisplayColor) == [0, 128, 255]

    normal = grid.direction_matrix[:, 2]
    contours_per_slice = [0] * SHAPE_ZYX[0]
    for contour in roi_contour.ContourSequence:
        assert contour.ContourGeometricType == "CLOSED_PLANAR"
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        assert len(points) == contour.NumberOfContourPoints >= 3
        (image,) = contour.ContourImageSequence
        k = series_uids.index(str(image.ReferencedSOPInstanceUID))
        plane_offsets = (points - np.asarray(headers[k].ImagePositionPatient, dtype=float)) @ normal
        assert np.max(np.abs(plane_offsets)) < 1e-3  # on the referenced slice's plane, in mm
        contours_per_slice[k] += 1
    # empty slice 0; hole + island on slice 2; a second component on 3; a border component on 4
    assert contours_per_slice == [0, 1, 3, 2, 2, 1]


def test_new_uids_and_only_patient_and_study_identification_copied(
    series: tuple[list[Path], Grid], tmp_path: Path
) -> None:
    files, grid = series
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(mask_image(lesion_mask(), grid), files, path)
    dataset = pydicom.dcmread(path)
    assert_new_object_of_same_patient(dataset, files, (*LEAKED_KEYWORDS, "StudyDescription", "FrameOfReferenceUID"))
    assert dataset.SOPInstanceUID != dataset.SeriesInstanceUID
    patient_keywords = {element.keyword for element in dataset if element.keyword.startswith("Patient")}
    assert patient_keywords == {"PatientName", "PatientID", "PatientBirthDate", "PatientSex"}
    second = tmp_path / "again.dcm"
    write_rtstruct(mask_image(lesion_mask(), grid), files, second)
    assert pydicom.dcmread(second).SOPInstanceUID != dataset.SOPInstanceUID


def test_read_matches_names_and_regex_and_reports_the_names_available(tmp_path: Path) -> None:
    files, grid = write_mr_series(tmp_path / "series", direction=np.eye(3))
    mask = lesion_mask()
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(mask_image(mask, grid), files, path, roi_name="GTV_nx")
    assert rtstruct_roi_names(path) == ["GTV_nx"]
    image_reference = mask_image(np.zeros(SHAPE_ZYX, dtype=np.uint8), grid)
    for names in (["gtv_NX"], ["gtv.*"], ["ptv", "GTV_(nx|np)"]):
        assert np.array_equal(sitk.GetArrayFromImage(read_rtstruct(path, image_reference, names)), mask), names
    with pytest.raises(ValueError, match=r"no ROI matches \['CTV'\]; ROIs available: \['GTV_nx'\]"):
        read_rtstruct(path, files, ["CTV"])
    assert matching_names(["GTV+", "GTVV"], ["gtv+"]) == ["GTV+", "GTVV"]  # equal ignoring case, and as a regex
    assert matching_names(["GTV"], ["[unclosed"]) == []


def test_read_refuses_another_frame_of_reference_and_contours_off_the_slices(tmp_path: Path) -> None:
    files, grid = write_mr_series(tmp_path / "series", direction=np.eye(3))
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(mask_image(lesion_mask(), grid), files, path)
    other_files, _ = write_mr_series(tmp_path / "other", direction=np.eye(3))
    with pytest.raises(ValueError, match="frame of reference"):
        read_rtstruct(path, other_files, ["GTV"])
    shifted, _ = write_mr_series(tmp_path / "shifted", direction=np.eye(3), origin_xyz=(-30.0, -40.0, 14.0))
    shifted_image = sitk.ReadImage([str(file) for file in shifted])  # half a slice off the contours' planes
    with pytest.raises(ValueError, match="none of its 9 contours lies on a slice"):
        read_rtstruct(path, shifted_image, ["GTV"])


def test_write_refuses_a_mask_on_another_grid_and_bad_arguments(tmp_path: Path) -> None:
    files, grid = write_mr_series(tmp_path / "series", direction=np.eye(3))
    image = mask_image(lesion_mask(), grid)
    image.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"not on the grid of series .* origin"):
        write_rtstruct(image, files, tmp_path / "x.dcm")
    good = mask_image(lesion_mask(), grid)
    with pytest.raises(ValueError, match="interpreted type"):
        write_rtstruct(good, files, tmp_path / "x.dcm", interpreted_type="TUMOUR")
    with pytest.raises(FileNotFoundError, match=r"missing.dcm"):
        write_rtstruct(good, [*files, tmp_path / "missing.dcm"], tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
    with pytest.raises(ValueError, match="not an RT Structure Set"):
        read_rtstruct(files[0], files, ["GTV"])


def test_empty_mask_gives_an_roi_without_contours(tmp_path: Path) -> None:
    files, grid = write_mr_series(tmp_path / "series", direction=np.eye(3))
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(mask_image(np.zeros(SHAPE_ZYX, dtype=np.uint8), grid), files, path, interpreted_type="ORGAN")
    dataset = pydicom.dcmread(path)
    assert "ContourSequence" not in dataset.ROIContourSequence[0]
    assert dataset.RTROIObservationsSequence[0].RTROIInterpretedType == "ORGAN"
    assert sitk.GetArrayFromImage(read_rtstruct(path, files, ["GTV"])).sum() == 0
