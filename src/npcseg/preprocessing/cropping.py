"""Centred zero-padding and cropping of slices to S x S, and its exact inverse.

Along each in-plane axis of length ``n`` the slice is padded with zeros when ``n < S`` and cropped when
``n > S``; the ``|S - n|`` added or removed voxels are split ``floor(|S - n| / 2)`` before and the rest
after (the odd voxel goes at the end, for padding and cropping alike). One signed offset per axis describes
both cases: ``output index = input index + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _centred_offset(length: int, size: int) -> int:
    difference = size - length
    before = abs(difference) // 2
    return before if difference >= 0 else -before


@dataclass(frozen=True)
class CropPad:
    """Where a slice of shape ``shape_yx`` sits in the ``size`` x ``size`` output.

    Attributes:
        shape_yx: in-plane shape ``(y, x)`` of the slices before padding / cropping.
        size: output slice side S in voxels.
        offset_yx: per axis, output index minus input index (positive: zeros padded before; negative: voxels
            cropped away before).
    """

    shape_yx: tuple[int, int]
    size: int
    offset_yx: tuple[int, int]

    @classmethod
    def centred(cls, shape_yx: tuple[int, int], size: int) -> CropPad:
        """The centred padding / cropping of slices of ``shape_yx`` to ``size`` x ``size``."""
        if size < 1:
            raise ValueError(f"slice size must be at least 1, got {size}")
        if len(shape_yx) != 2 or min(shape_yx) < 1:
            raise ValueError(f"slice shape must be two positive lengths (y, x), got {shape_yx}")
        offsets = (_centred_offset(shape_yx[0], size), _centred_offset(shape_yx[1], size))
        return cls(shape_yx=(int(shape_yx[0]), int(shape_yx[1])), size=int(size), offset_yx=offsets)

    def _windows(self, axis: int) -> tuple[slice, slice]:
        """Matching index ranges ``(input, output)`` along in-plane ``axis`` (0 = y, 1 = x)."""
        length, offset = self.shape_yx[axis], self.offset_yx[axis]
        start = max(0, -offset)
        stop = min(length, self.size - offset)
        return slice(start, stop), slice(start + offset, stop + offset)

    def apply(self, array: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Pad / crop the last two axes of ``array`` (..., y, x) to (..., S, S); padding takes ``fill``."""
        if tuple(array.shape[-2:]) != self.shape_yx:
            raise ValueError(f"expected slices of shape {self.shape_yx}, got array of shape {array.shape}")
        (input_y, output_y), (input_x, output_x) = self._windows(0), self._windows(1)
        output = np.full((*array.shape[:-2], self.size, self.size), fill, dtype=array.dtype)
        output[..., output_y, output_x] = array[..., input_y, input_x]
        return output

    def invert(self, array: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Undo :meth:`apply`: (..., S, S) -> (..., y, x); voxels that were cropped away take ``fill``."""
        if tuple(array.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"expected slices of shape ({self.size}, {self.size}), got array of shape {array.shape}")
        (input_y, output_y), (input_x, output_x) = self._windows(0), self._windows(1)
        restored = np.full((*array.shape[:-2], *self.shape_yx), fill, dtype=array.dtype)
        restored[..., input_y, input_x] = array[..., output_y, output_x]
        return restored

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"shape_yx": list(self.shape_yx), "size": self.size, "offset_yx": list(self.offset_yx)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CropPad:
        """Inverse of :meth:`to_dict`."""
        shape, offset = data["shape_yx"], data["offset_yx"]
        return cls(
            shape_yx=(int(shape[0]), int(shape[1])),
            size=int(data["size"]),
            offset_yx=(int(offset[0]), int(offset[1])),
        )
