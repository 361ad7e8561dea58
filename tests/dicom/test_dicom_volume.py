"""Series discovery and volume building: geometry from headers (axial, oblique, shuffled), refusal of bad series,
and the MR files bundled with pydicom."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_import_builders import StudyWriter, assert_same_geometry, integer_image, oblique_direction

from npcseg.dicom.series import scan_folder
from npcseg.dicom.volume import read_series, series_geometry
from npcseg.dicom.write import pixel_rescale, write_series

PYDICOM_TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
"""The test files inside the pydicom wheel (others would need a download)."""


def _read_single_series(folder: Path) -> sitk.Image:
    scan = scan_folder(folder)
    assert len(scan.series) == 1
    return read_series(scan.series[0]).image


@pytest.mark.parametrize("direction", [None, oblique_direction()], ids=["axial", "oblique"])
def test_round_trip_recovers_values_and_geometry(tmp_path: Path, direction: tuple[float, ...] | None) -> None:
    image = integer_image(direction=direction)
    write_series(image, tmp_path / "series")
    read = _read_single_series(tmp_path)
    assert_same_geometry(read, image, tolerance=1e-4)
    # the measured error is far below the 1e-4 requirement (16-character decimal strings)
    assert np.abs(np.subtract(read.GetDirection(), image.GetDirection())).max() < 1e-9
    assert np.abs(np.subtract(read.GetOrigin(), image.GetOrigin())).max() < 1e-9
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image))


def test_slice_order_comes_from_positions_not_file_names(tmp_path: Path) -> None:
    image = integer_image(direction=oblique_direction(), seed=3)
    files = write_series(image, tmp_path / "written")
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    names = [f"x{n:x}" for n in random.Random(1).sample(range(1000, 9999), len(files))]
    for path, name in zip(files, names, strict=True):  # reversed-and-random names, no .dcm ending
        shutil.copy(path, shuffled / name)
    scan = scan_folder(shuffled)
    volume = read_series(scan.series[0])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image), sitk.GetArrayFromImage(image))
    assert [path.name for path in volume.geometry.files] == names  # slice k <- written file k
    assert np.all(np.diff(volume.geometry.positions_mm) > 0)


def test_mixed_series_in_one_folder_are_separated(tmp_path: Path) -> None:
    study = StudyWriter(tmp_path / "written")
    first = integer_image(seed=1)
    second = integer_image(shape_zyx=(4, 8, 8), spacing_xyz=(1.0, 1.0, 5.0), seed=2)
    paths = study.series(first, "T2 AX", 3) + study.series(second, "T1 AX", 4)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for index, path in enumerate(random.Random(0).sample(paths, len(paths))):
        shutil.copy(path, mixed / f"{index:03d}")
    (mixed / "notes.txt").write_text("not DICOM")
    scan = scan_folder(mixed)
    assert scan.num_files == len(paths) + 1 and scan.num_not_dicom == 1
    assert [series.series_description for series in scan.series] == ["T2 AX", "T1 AX"]
    for series, expected in zip(scan.series, (first, second), strict=True):
        image = read_series(series).image
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(expected))


def test_missing_slice_is_refused_naming_the_series(tmp_path: Path) -> None:
    study = StudyWriter(tmp_path / "series")
    files = study.series(integer_image(shape_zyx=(8, 6, 6)), "T2 TSE AX", 7)
    files[4].unlink()
    series = scan_folder(tmp_path).series[0]
    with pytest.raises(ValueError, match=r"series 7 'T2 TSE AX'.*missing slice\(s\): a gap of 6 mm.*about 1 slice"):
        series_geometry(series)


def test_uneven_spacing_and_duplicates_are_refused(tmp_path: Path) -> None:
    files = write_series(integer_image(shape_zyx=(6, 6, 6)), tmp_path / "series")
    dataset = pydicom.dcmread(files[-1])
    dataset.ImagePositionPatient[2] = float(dataset.ImagePositionPatient[2]) + 0.5  # last step 3.5 mm, not 3
    dataset.save_as(files[-1])
    with pytest.raises(ValueError, match="varying slice spacing"):
        series_geometry(scan_folder(tmp_path).series[0])
    dataset.ImagePositionPatient = pydicom.dcmread(files[-2]).ImagePositionPatient
    dataset.save_as(files[-1])
    with pytest.raises(ValueError, match="share a position"):
        series_geometry(scan_folder(tmp_path).series[0])


def test_mixed_orientation_and_sizes_are_refused(tmp_path: Path) -> None:
    files = write_series(integer_image(shape_zyx=(4, 6, 6)), tmp_path / "series")
    dataset = pydicom.dcmread(files[0])
    dataset.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    dataset.save_as(files[0])
    with pytest.raises(ValueError, match="mixed slice orientations"):
        series_geometry(scan_folder(tmp_path).series[0])
    dataset = pydicom.dcmread(files[0])
    dataset.ImageOrientationPatient = pydicom.dcmread(files[1]).ImageOrientationPatient
    dataset.Rows = 5
    dataset.save_as(files[0])
    with pytest.raises(ValueError, match=r"mixed image sizes \(rows x columns: 5x6, 6x6\)"):
        series_geometry(scan_folder(tmp_path).series[0])


def test_float_images_are_quantised_within_half_a_step() -> None:
    array = np.random.default_rng(0).normal(0, 100, size=(3, 5, 5)).astype(np.float32)
    stored, slope, intercept = pixel_rescale(array)
    assert stored.dtype == np.int16
    assert np.abs(stored * slope + intercept - array).max() <= slope / 2 + 1e-9


def test_bundled_mr_small_reads_like_pydicom(tmp_path: Path) -> None:
    path = PYDICOM_TEST_FILES / "MR_small.dcm"
    if not path.is_file():
        pytest.skip("MR_small.dcm is not bundled with this pydicom")
    dataset = pydicom.dcmread(path)
    shutil.copy(path, tmp_path / "only")
    scan = scan_folder(tmp_path)
    volume = read_series(scan.series[0])
    array = sitk.GetArrayFromImage(volume.image)
    assert array.shape == (1, 64, 64)
    np.testing.assert_array_equal(array[0], dataset.pixel_array)
    assert volume.image.GetOrigin() == pytest.approx([float(v) for v in dataset.ImagePositionPatient])
    assert volume.image.GetSpacing() == pytest.approx((0.3125, 0.3125, 0.8))  # one slice: SliceThickness
    assert volume.image.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))


@pytest.mark.parametrize(
    "name",
    sorted(path.name for path in PYDICOM_TEST_FILES.glob("*MR*.dcm") if path.name != "MR_truncated.dcm"),
)
def test_bundled_mr_small_transfer_syntaxes_decode_identically(tmp_path: Path, name: str) -> None:
    reference = pydicom.dcmread(PYDICOM_TEST_FILES / "MR_small.dcm").pixel_array
    shutil.copy(PYDICOM_TEST_FILES / name, tmp_path / "file")
    series = scan_folder(tmp_path).series[0]
    try:
        volume = read_series(series)
    except ValueError as error:  # a codec GDCM lacks: the message must say so, naming the series
        assert "pixel data could not be read" in str(error) and str(error).startswith("series ")
        pytest.skip(f"{name}: {error}")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image)[0], reference)


def test_bundled_truncated_mr_gives_a_clear_error(tmp_path: Path) -> None:
    path = PYDICOM_TEST_FILES / "MR_truncated.dcm"
    if not path.is_file():
        pytest.skip("MR_truncated.dcm is not bundled")
    shutil.copy(path, tmp_path / "file")
    with pytest.raises(ValueError, match=r"^series .*pixel data could not be read"):
        read_series(scan_folder(tmp_path).series[0])


def test_bundled_multi_orientation_mr_series_are_refused() -> None:
    folder = PYDICOM_TEST_FILES / "dicomdirtests" / "98892003"
    if not folder.is_dir():
        pytest.skip("dicomdirtests are not bundled")
    scan = scan_folder(folder)
    pilots = [series for series in scan.series if "PILOT" in series.series_description]
    angio = [series for series in scan.series if series.series_number == 700]
    assert pilots and angio
    for series in [*pilots, *angio]:  # tri-planar localisers and radial projections: several orientations
        with pytest.raises(ValueError, match="mixed slice orientations"):
            series_geometry(series)
