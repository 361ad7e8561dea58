"""Checks on NIfTI files that the reader of SimpleITK 2.5 (ITK 5.4) does not make.

Two silent failures of ITK 5.4's NIfTI reader, both measured here with SimpleITK 2.5.7:

* a truncated ``.nii`` or ``.nii.gz`` file is read without an error, the missing voxels holding whatever the
  buffer held (:func:`nifti_truncation` finds it from the header and the file or gzip sizes);
* NaN and infinite voxels of a float image are read as 0 (``nifti_read_buffer`` zeroes them; ITK 6 keeps them,
  InsightSoftwareConsortium/ITK pull request 6683), so a check on the image in memory never sees them
  (:func:`nifti_nonfinite_count` counts them in the file's bytes).

Only single-file NIfTI-1 and NIfTI-2 (``.nii``, ``.nii.gz``) are understood; for anything else both functions
answer ``None`` and leave the judgement to the reader.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_HEADER_BYTES = 540  # enough for either header version
_FLOAT_DATATYPES = {16: "f4", 64: "f8"}  # NIFTI_TYPE_FLOAT32, NIFTI_TYPE_FLOAT64


@dataclass(frozen=True)
class NiftiLayout:
    """Where a NIfTI file's voxels lie.

    Attributes:
        byte_order: ``"<"`` (little-endian) or ``">"``.
        datatype: the NIfTI datatype code (16: float32, 64: float64, 4: int16, ...).
        bits_per_voxel: the header's ``bitpix``.
        num_voxels: product of the header's dimensions.
        data_offset: byte offset of the first voxel (the header's ``vox_offset``).
    """

    byte_order: str
    datatype: int
    bits_per_voxel: int
    num_voxels: int
    data_offset: int

    @property
    def data_end(self) -> int:
        """Byte offset just after the last voxel: the least size of a complete (uncompressed) file."""
        return self.data_offset + self.num_voxels * self.bits_per_voxel // 8


def nifti_layout(header: bytes) -> NiftiLayout | None:
    """Parse the first bytes of a NIfTI-1 or NIfTI-2 file; ``None`` when they are not such a header."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(f"{order}i", header[:4])[0] == 348:
            dims: tuple[int, ...] = struct.unpack(f"{order}8h", header[40:56])
            datatype, bitpix = struct.unpack(f"{order}hh", header[70:74])
            vox_offset = int(struct.unpack(f"{order}f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(f"{order}i", header[:4])[0] == 540:
            datatype, bitpix = struct.unpack(f"{order}hh", header[12:16])
            dims = struct.unpack(f"{order}8q", header[16:80])
            vox_offset = struct.unpack(f"{order}q", header[168:176])[0]
            break
    else:
        return None
    num_dims = dims[0]
    if not 1 <= num_dims <= 7 or bitpix <= 0 or any(size < 1 for size in dims[1 : num_dims + 1]):
        return None
    return NiftiLayout(
        byte_order=order,
        datatype=datatype,
        bits_per_voxel=bitpix,
        num_voxels=math.prod(dims[1 : num_dims + 1]),
        data_offset=vox_offset,
    )


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _read_layout(path: Path) -> NiftiLayout | None:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        return nifti_layout(stream.read(_HEADER_BYTES))


def nifti_truncation(path: Path) -> str | None:
    """Why a ``.nii`` / ``.nii.gz`` file is shorter than its header announces, or ``None`` when complete.

    ``.nii``: the file size is compared with the header's data offset plus the voxel data size.
    ``.nii.gz``: the gzip trailer's uncompressed size is compared with the same number (constant time); only
    when they differ (a truncated file, or several gzip members) is the stream decompressed to be sure. Other
    file types, and headers this check does not understand, give ``None``.
    """
    path = Path(path)
    if not _is_nifti(path):
        return None
    try:
        layout = _read_layout(path)
        if layout is None:
            return None
        if path.name.endswith(".nii"):
            size = path.stat().st_size
            if size < layout.data_end:
                return f"the file has {size} bytes, its header announces {layout.data_end}"
            return None
        with path.open("rb") as raw:
            raw.seek(-4, 2)
            if struct.unpack("<I", raw.read(4))[0] == layout.data_end % 2**32:
                return None
        num_bytes = 0
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                num_bytes += len(chunk)
    except EOFError:
        return "the compressed stream ends before the voxel data do"
    except (OSError, zlib.error) as error:
        return f"corrupt compressed data: {error}"
    if num_bytes < layout.data_end:
        return f"the decompressed file has {num_bytes} bytes, its header announces {layout.data_end}"
    return None


def nifti_nonfinite_count(path: Path) -> int | None:
    """Number of NaN or infinite voxels stored in a float32 / float64 NIfTI file.

    ``None`` for files that are not NIfTI, not float, or not complete (see :func:`nifti_truncation`): for
    those the image read by SimpleITK tells the truth (or the file is broken anyway). Reads the voxel data a
    second time (decompressing a ``.nii.gz`` again), which is why it is asked only of float files.
    """
    path = Path(path)
    if not _is_nifti(path):
        return None
    try:
        layout = _read_layout(path)
        if layout is None or layout.datatype not in _FLOAT_DATATYPES:
            return None
        dtype = np.dtype(layout.byte_order + _FLOAT_DATATYPES[layout.datatype])
        if dtype.itemsize * 8 != layout.bits_per_voxel:
            return None
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                data = stream.read()
            if len(data) < layout.data_end:
                return None
            voxels = np.frombuffer(data, dtype=dtype, count=layout.num_voxels, offset=layout.data_offset)
        else:
            if path.stat().st_size < layout.data_end:
                return None
            voxels = np.fromfile(path, dtype=dtype, count=layout.num_voxels, offset=layout.data_offset)
    except (EOFError, OSError, zlib.error):
        return None
    return int(voxels.size - np.count_nonzero(np.isfinite(voxels)))
