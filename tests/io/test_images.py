"""Image reading and writing: errors naming the file, truncation caught in every format, NIfTI quirks."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from npcseg.io.images import (
    IMAGE_SUFFIXES,
    find_image,
    finite_check,
    image_stem,
    read_image,
    read_volume,
    write_image,
)
from npcseg.io.nifti import nifti_layout, nifti_nonfinite_count, nifti_truncation
from npcseg.io.volume import Volume


def small_image(dtype: type = np.float32) -> sitk.Image:
    array = np.random.default_rng(0).uniform(0, 100, size=(5, 6, 7)).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.6, 3.0))
    image.SetOrigin((1.0, -2.0, 3.0))
    return image


def test_image_stem_and_find_image(tmp_path: Path) -> None:
    assert image_stem(Path("t2.nii.gz")) == "t2"
    assert image_stem(Path("t2.nii")) == "t2"
    assert image_stem(Path("label.nrrd")) == "label"
    assert image_stem(Path("x.mha")) == "x"
    assert image_stem(Path(".nii.gz")) is None
    assert image_stem(Path("t2.gz")) is None
    assert image_stem(Path("notes.txt")) is None
    for name in ("t2.nii", "t2.nii.gz", "t1.mha", "t2.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "t2.nrrd").mkdir()  # a folder is not an image
    assert find_image(tmp_path, "t2") == [tmp_path / "t2.nii.gz", tmp_path / "t2.nii"]  # IMAGE_SUFFIXES order
    assert find_image(tmp_path, "t1c") == []


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_write_then_read(tmp_path: Path, suffix: str) -> None:
    image = small_image()
    path = write_image(image, tmp_path / "sub" / f"image{suffix}")
    read = read_image(path)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(read), sitk.GetArrayViewFromImage(image))
    assert read.GetSpacing() == pytest.approx(image.GetSpacing())
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_refuses_unknown_ending(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image\.png: unsupported image file ending"):
        write_image(small_image(), tmp_path / "image.png")
    assert list(tmp_path.iterdir()) == []


def test_read_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"t2\.nii\.gz: file not found"):
        read_image(tmp_path / "t2.nii.gz")


def test_read_garbage_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t2.nii.gz"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"t2\.nii\.gz: unreadable or truncated image \(Unable to determine"):
        read_image(path)


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.99])
@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_truncated_file_is_refused_in_every_format(tmp_path: Path, suffix: str, fraction: float) -> None:
    # SimpleITK 2.5.7 reads a truncated NIfTI file (.nii and .nii.gz) without an error: npcseg must not.
    path = write_image(small_image(), tmp_path / f"image{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=re.escape(f"image{suffix}: unreadable or truncated image")):
        read_image(path)


def test_truncation_messages(tmp_path: Path) -> None:
    nii = write_image(small_image(), tmp_path / "image.nii")
    expected_size = 352 + 5 * 6 * 7 * 4
    assert nii.stat().st_size == expected_size and nifti_truncation(nii) is None
    nii.write_bytes(nii.read_bytes()[:-10])
    assert nifti_truncation(nii) == f"the file has {expected_size - 10} bytes, its header announces {expected_size}"
    gz = write_image(small_image(), tmp_path / "image.nii.gz")
    assert nifti_truncation(gz) is None
    gz.write_bytes(gz.read_bytes()[:-6])
    assert nifti_truncation(gz) == "the compressed stream ends before the voxel data do"
    assert nifti_truncation(write_image(small_image(), tmp_path / "image.nrrd")) is None


def test_complete_gzip_of_several_members_is_accepted(tmp_path: Path) -> None:
    # The gzip trailer then holds the last member's size only: the slow path must decide, and accept.
    path = write_image(small_image(), tmp_path / "image.nii.gz")
    whole = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(whole[:1000]) + gzip.compress(whole[1000:]))
    assert nifti_truncation(path) is None
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(path)), sitk.GetArrayFromImage(small_image()))


def test_nifti_layout_of_both_byte_orders() -> None:
    for order in "<>":
        header = bytearray(348)
        header[0:4] = struct.pack(f"{order}i", 348)
        header[40:56] = struct.pack(f"{order}8h", 3, 7, 6, 5, 1, 1, 1, 1)
        header[70:74] = struct.pack(f"{order}hh", 4, 16)  # int16
        header[108:112] = struct.pack(f"{order}f", 352.0)
        layout = nifti_layout(bytes(header))
        assert layout is not None
        assert (layout.byte_order, layout.datatype, layout.num_voxels) == (order, 4, 210)
        assert layout.data_end == 352 + 210 * 2
    assert nifti_layout(b"\0" * 348) is None
    assert nifti_layout(b"short") is None


def test_non_3d_images_are_refused_unless_allowed(tmp_path: Path) -> None:
    two_d = write_image(sitk.Image([4, 5], sitk.sitkFloat32), tmp_path / "slice.nii.gz")
    four_d = write_image(sitk.JoinSeries([small_image()] * 2), tmp_path / "series.nii.gz")
    with pytest.raises(ValueError, match=r"slice\.nii\.gz: expected a 3D image, got 2D of size \(4, 5\)"):
        read_image(two_d)
    with pytest.raises(ValueError, match=r"series\.nii\.gz: expected a 3D image, got 4D of size \(7, 6, 5, 2\)"):
        read_image(four_d)
    assert read_image(two_d, require_3d=False).GetDimension() == 2
    single_slice = write_image(sitk.Image([4, 5, 1], sitk.sitkFloat32), tmp_path / "one.nii.gz")
    assert read_image(single_slice).GetSize() == (4, 5, 1)


def test_vector_images_are_refused(tmp_path: Path) -> None:
    path = write_image(sitk.Image([4, 5, 3], sitk.sitkVectorFloat32, 2), tmp_path / "vector.mha")
    with pytest.raises(ValueError, match=r"vector\.mha: expected a scalar image, got 2 components"):
        read_image(path)


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_nonfinite_voxels_are_counted(tmp_path: Path, suffix: str) -> None:
    array = sitk.GetArrayFromImage(small_image())
    array[0, 0, 0] = np.nan
    array[4, 5, 6] = -np.inf
    path = write_image(sitk.GetImageFromArray(array), tmp_path / f"image{suffix}")
    image = read_image(path)
    if suffix.startswith(".nii"):
        # ITK 5.4's NIfTI reader turns NaN and infinities into 0; the file still holds them.
        assert finite_check(image) == 0
        assert sitk.GetArrayViewFromImage(image)[0, 0, 0] == 0
        assert nifti_nonfinite_count(path) == 2
    else:
        assert finite_check(image) == 2
        assert nifti_nonfinite_count(path) is None


def test_nonfinite_count_is_none_for_integer_nifti(tmp_path: Path) -> None:
    path = write_image(small_image(np.int16), tmp_path / "image.nii.gz")
    assert nifti_nonfinite_count(path) is None
    assert finite_check(read_image(path)) == 0
    double = write_image(small_image(np.float64), tmp_path / "double.nii")
    assert nifti_nonfinite_count(double) == 0


def test_read_volume_casts(tmp_path: Path) -> None:
    path = write_image(small_image(np.int16), tmp_path / "image.nrrd")
    volume = read_volume(path, dtype=np.float32)
    assert volume.array.dtype == np.float32 and volume.array.shape == (5, 6, 7)
    assert volume.spacing_mm == pytest.approx((3.0, 0.6, 0.5))


def test_write_volume(tmp_path: Path) -> None:
    volume = Volume.from_image(small_image())
    read = read_volume(write_image(volume, tmp_path / "volume.mha"))
    np.testing.assert_array_equal(read.array, volume.array)
    assert read.grid == volume.grid
