"""Reading and writing 3D images (NIfTI, NRRD, MetaImage) through SimpleITK, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.io.atomic import atomic_path
from npcseg.io.nifti import nifti_truncation
from npcseg.io.volume import Volume

IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha")
"""File endings accepted for images, in the order they are looked for."""


def find_image(folder: Path, stem: str) -> list[Path]:
    """All files in ``folder`` named ``stem`` plus one of :data:`IMAGE_SUFFIXES` (normally zero or one)."""
    return [folder / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]


def image_stem(path: Path) -> str | None:
    """The name of ``path`` without its image suffix, or ``None`` when it is not an image file name."""
    for suffix in IMAGE_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def read_image(path: Path, *, require_3d: bool = True) -> sitk.Image:
    """Read an image; ``FileNotFoundError`` / ``ValueError`` name the file and the problem.

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.nrrd`` or ``.mha`` file.
        require_3d: refuse 2D or 4D images (a 3D image with one slice is accepted).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ValueError(f"{path}: unreadable or truncated image ({_reader_reason(error)})") from error
    truncation = nifti_truncation(path)
    if truncation is not None:
        raise ValueError(f"{path}: unreadable or truncated image ({truncation})")
    if require_3d and image.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3D image, got {image.GetDimension()}D of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
    return image


def read_volume(path: Path, dtype: type | None = None) -> Volume:
    """Read an image as a :class:`Volume` (optionally cast to ``dtype``)."""
    image = read_image(path)
    volume = Volume.from_image(image)
    if dtype is not None:
        volume = volume.with_array(volume.array.astype(dtype, copy=False))
    return volume


def write_image(image: sitk.Image | Volume, path: Path, *, compress: bool = True) -> Path:
    """Write an image atomically (temporary file, then rename); returns ``path``."""
    if isinstance(image, Volume):
        image = image.to_image()
    path = Path(path)
    if image_stem(path) is None:
        raise ValueError(f"{path}: unsupported image file ending; use one of {IMAGE_SUFFIXES}")
    with atomic_path(path) as temporary:
        sitk.WriteImage(image, str(temporary), useCompression=compress)
    return path


def finite_check(image: sitk.Image) -> int:
    """Number of NaN or infinite voxels in ``image``.

    An image read from NIfTI has none: ITK 5.4's NIfTI reader turns them into 0. Count them in the file with
    :func:`npcseg.io.nifti.nifti_nonfinite_count`.
    """
    array = sitk.GetArrayViewFromImage(image)
    if not np.issubdtype(array.dtype, np.floating):
        return 0
    return int(np.count_nonzero(~np.isfinite(array)))


def _reader_reason(error: RuntimeError) -> str:
    """The informative line of an ITK reader exception (the last line alone can be a misleading errno)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "unknown reader error"
    for line in lines:
        if "ERROR:" in line:
            message = line.split("ERROR:", 1)[1].strip()
            if "): " in message:  # drop "MetaImageIO(0x55...): "
                message = message.split("): ", 1)[1]
            return message if line is lines[-1] else f"{message} {lines[-1]}"
    return lines[-1]
