"""Box crops of slices and the crop cache the cascade's segmenter trains on (SeqSeg cascade; METHODS.md, method 2).

Geometry. A :class:`~npcseg.detection.boxes.Box` is continuous (pixel ``k`` covers ``[k, k + 1)``, its centre is at
``k + 0.5``). :func:`crop_slice` samples a box on a ``size`` x ``size`` grid whose pixel centres divide the box
evenly: output pixel ``i`` has its centre at ``top + (i + 0.5) * height / size``. Images are sampled bilinearly
between pixel centres (the half pixel at an image border repeats the border pixel); wherever a sample lies outside
the slice it is 0, as in the cache's own zero padding. Labels are sampled the same way as 0 / 1 floats and
thresholded at 0.5 (``linear_threshold``, the pre-processing's rule), or taken from the nearest pixel
(``nearest``). :func:`paste_crop` is the inverse: a slice pixel whose centre lies inside the box takes the crop's
bilinear value at that point, every other pixel 0. When ``size`` is a multiple of the box's size in pixels and the
box lies on pixel edges, crop and paste reproduce a mask exactly (tested).

The crop cache (:func:`build_crop_cache`) is a preprocessed cache in the very format ``npcseg preprocess`` writes
(:mod:`npcseg.preprocessing.cache`), so :func:`npcseg.training.trainer.train` trains on it unchanged: one "case" per
original case whose slices are that case's crops, one per tumour slice::

    preprocessing.yaml        the source cache's config with slice_size = crop size (travels with the trained run)
    crops.yaml                the crop settings (CropSettings); a rerun into the folder must match them
    cases/<case_id>.npz       image float32 (C, N, size, size), label uint8 (N, size, size)
    cases/<case_id>.json      the crops: slice index, crop window and ground-truth box of each

The crop window is the ground-truth box (one box around all components, :func:`box_of_mask`) randomly jittered --
its centre moved by up to ``jitter`` of its height / width, its height and width scaled by a factor in ``[1 -
jitter, 1 + jitter]``, seeded per case -- to mimic the detector's error, then enlarged ``scale`` times about its
centre as the cascade does with the detector's box. Cases without tumour get no files (they have no crops).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

import npcseg
from npcseg.config import config_differences, config_to_dict, load_config, save_config
from npcseg.detection.boxes import Box, box_of_mask
from npcseg.io.atomic import atomic_path, atomic_write_text
from npcseg.preprocessing.cache import (
    CONFIG_FILENAME,
    case_files,
    list_preprocessed,
    load_cache_config,
    load_preprocessed,
)

logger = logging.getLogger(__name__)

SETTINGS_FILENAME = "crops.yaml"
LabelSampling = Literal["linear_threshold", "nearest"]


@dataclass(frozen=True)
class CropSettings:
    """What decides a crop cache's content (saved as ``crops.yaml``)."""

    source_cache: str
    """The preprocessed cache the crops are cut from (resolved path)."""
    scale: float = 1.5
    """The (jittered) ground-truth box is enlarged this many times about its centre (paper 1.5)."""
    size: int = 64
    """Side in pixels every crop is resized to (ours)."""
    jitter: float = 0.1
    """Largest random shift of the box centre and change of its height / width, as a fraction of its size (ours)."""
    seed: int = 0
    """Seed of the jitter (each case draws from ``(seed, crc32(case_id))``)."""
    label_sampling: LabelSampling = "linear_threshold"
    """How labels are resampled into the crop: ``linear_threshold`` (bilinear then >= 0.5) or ``nearest``."""

    def __post_init__(self) -> None:
        if self.scale < 1 or self.size < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"crop settings need scale >= 1, size >= 1 and jitter in [0, 1), got {self}")
        if self.label_sampling not in ("linear_threshold", "nearest"):
            raise ValueError(f"label_sampling must be linear_threshold or nearest, got {self.label_sampling!r}")


def _sample_positions(start: float, length: float, size: int) -> np.ndarray:
    """Continuous coordinates of the centres of ``size`` pixels dividing ``[start, start + length)``."""
    return start + (np.arange(size) + 0.5) * (length / size)


def crop_slice(image: np.ndarray, box: Box, size: int, *, order: int = 1) -> np.ndarray:
    """The box of a slice resampled to ``size`` x ``size`` (see the module docstring).

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` slice.
        box: the crop window, in the slice's continuous pixel coordinates (may reach outside the slice).
        size: output side in pixels.
        order: 1 bilinear, 0 nearest pixel.

    Returns:
        float32 ``(C, size, size)`` or ``(size, size)``; 0 where a sample lies outside the slice.
    """
    array = np.asarray(image, dtype=np.float32)
    planes = array[None] if array.ndim == 2 else array
    if planes.ndim != 3:
        raise ValueError(f"crop_slice needs a (C, H, W) or (H, W) slice, got shape {array.shape}")
    height, width = planes.shape[1:]
    rows = _sample_positions(box.top, box.height, size)
    columns = _sample_positions(box.left, box.width, size)
    inside = ((rows >= 0) & (rows < height))[:, None] & ((columns >= 0) & (columns < width))[None, :]
    grid_rows, grid_columns = np.meshgrid(rows - 0.5, columns - 0.5, indexing="ij")  # index space: centres at k
    output = np.stack(
        [ndimage.map_coordinates(plane, [grid_rows, grid_columns], order=order, mode="nearest") for plane in planes]
    ).astype(np.float32)
    output[:, ~inside] = 0.0
    return output[0] if array.ndim == 2 else output


def crop_label(label: np.ndarray, box: Box, size: int, sampling: LabelSampling = "linear_threshold") -> np.ndarray:
    """A 2D 0 / 1 label cropped like :func:`crop_slice`: uint8 ``(size, size)``."""
    if sampling == "nearest":
        return (crop_slice(np.asarray(label) != 0, box, size, order=0) >= 0.5).astype(np.uint8)
    return (crop_slice(np.asarray(label) != 0, box, size, order=1) >= 0.5).astype(np.uint8)


def paste_crop(crop: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """A ``(size, size)`` crop of ``box`` put back into a slice of ``shape``: the inverse of :func:`crop_slice`.

    Returns:
        float32 ``shape``: pixels whose centre lies inside the box take the crop's bilinear value there (the crop's
        border half pixels repeat), all other pixels 0.
    """
    values = np.asarray(crop, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"paste_crop needs a 2D crop, got shape {values.shape}")
    output = np.zeros(shape, dtype=np.float32)
    if box.bottom <= 0 or box.right <= 0 or box.top >= shape[0] or box.left >= shape[1]:
        return output
    top, left, bottom, right = box.pixel_bounds(shape)
    centres_rows = np.arange(top, bottom) + 0.5
    centres_columns = np.arange(left, right) + 0.5
    keep_rows = (centres_rows >= box.top) & (centres_rows < box.bottom)
    keep_columns = (centres_columns >= box.left) & (centres_columns < box.right)
    crop_rows = (centres_rows - box.top) * (values.shape[0] / box.height) - 0.5
    crop_columns = (centres_columns - box.left) * (values.shape[1] / box.width) - 0.5
    grid_rows, grid_columns = np.meshgrid(crop_rows, crop_columns, indexing="ij")
    sampled = ndimage.map_coordinates(values, [grid_rows, grid_columns], order=1, mode="nearest")
    sampled[~(keep_rows[:, None] & keep_columns[None, :])] = 0.0
    output[top:bottom, left:right] = sampled
    return output


def jittered_box(box: Box, jitter: float, rng: np.random.Generator) -> Box:
    """``box`` with its centre moved by up to ``jitter`` of its height / width and its height and width each scaled
    by a factor in ``[1 - jitter, 1 + jitter]`` (uniform draws)."""
    shift_row, shift_column, grow_height, grow_width = rng.uniform(-jitter, jitter, size=4)
    row, column = box.centre
    row, column = row + shift_row * box.height, column + shift_column * box.width
    half_height, half_width = box.height * (1 + grow_height) / 2, box.width * (1 + grow_width) / 2
    return Box(row - half_height, column - half_width, row + half_height, column + half_width)


def _case_rng(seed: int, case_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


def _claim(out: Path, settings: CropSettings, source_config: Any) -> None:
    """Write ``crops.yaml`` (first) and ``preprocessing.yaml``, or check an existing crop cache has these settings."""
    path = out / SETTINGS_FILENAME
    if path.is_file():
        saved = config_to_dict(load_config(CropSettings, path))
        changes = config_differences(saved, config_to_dict(settings))
        if changes:
            raise ValueError(f"{out}: holds a crop cache with other settings ({'; '.join(changes)}); use a new folder")
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out}: not empty and not a crop cache (no {SETTINGS_FILENAME}); refusing to write into it")
    else:
        out.mkdir(parents=True, exist_ok=True)
        save_config(settings, path)
    if not (out / CONFIG_FILENAME).is_file():  # also completes a claim interrupted between the two files
        save_config(source_config.with_changes(slice_size=settings.size), out / CONFIG_FILENAME)


def crop_case(
    image: np.ndarray, label: np.ndarray, settings: CropSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Crops of every tumour slice of one case.

    Args:
        image: ``(C, Z, H, W)``.
        label: ``(Z, H, W)`` 0 / 1.
        settings: scale, size, jitter and label sampling.
        rng: the case's generator (one draw of four numbers per tumour slice, in slice order).

    Returns:
        image crops float32 ``(C, N, size, size)``, label crops uint8 ``(N, size, size)``, and per crop
        ``{"z", "window": [top, left, bottom, right], "target_box": [...]}``.
    """
    images, labels, crops = [], [], []
    for z in range(label.shape[0]):
        target = box_of_mask(label[z] != 0)
        if target is None:
            continue
        window = jittered_box(target, settings.jitter, rng).scaled(settings.scale)
        images.append(crop_slice(image[:, z], window, settings.size))
        labels.append(crop_label(label[z], window, settings.size, settings.label_sampling))
        crops.append({"z": z, "window": list(window.as_tuple()), "target_box": list(target.as_tuple())})
    channels = image.shape[0]
    if not crops:
        empty = np.zeros((channels, 0, settings.size, settings.size), dtype=np.float32)
        return empty, np.zeros((0, settings.size, settings.size), dtype=np.uint8), []
    return np.stack(images, axis=1), np.stack(labels), crops


def build_crop_cache(
    cache: Path,
    case_ids: Sequence[str],
    out: Path,
    *,
    scale: float = 1.5,
    size: int = 64,
    jitter: float = 0.1,
    seed: int = 0,
    label_sampling: LabelSampling = "linear_threshold",
) -> Path:
    """Cut the tumour slices of ``case_ids`` into the crop cache ``out`` (resumable; see the module docstring).

    Args:
        cache: the preprocessed cache (``npcseg preprocess`` output); never modified.
        case_ids: labelled cases of ``cache``.
        out: the crop cache folder (created); one holding a crop cache of other settings is refused.
        scale: enlargement of the (jittered) ground-truth box (paper 1.5).
        size: side of the crops in pixels.
        jitter: largest relative jitter of the box's centre and size.
        seed: seed of the jitter.
        label_sampling: ``linear_threshold`` or ``nearest``.

    Returns:
        ``out``. Cases done before (both files present) are skipped; cases without tumour get no files.

    Raises:
        FileNotFoundError: the cache or a case is missing.
        ValueError: a case has no label, or ``out`` holds something else.
    """
    cache, out = Path(cache), Path(out)
    settings = CropSettings(str(cache.resolve()), scale, size, jitter, seed, label_sampling)
    _claim(out, settings, load_cache_config(cache))
    done = set(list_preprocessed(out))
    num_crops = 0
    for case_id in case_ids:
        if case_id in done:
            continue
        case = load_preprocessed(cache, case_id)
        if case.label is None:
            raise ValueError(f"{cache}: case {case_id!r} has no label; it cannot be cropped for training")
        images, labels, crops = crop_case(case.image, case.label, settings, _case_rng(seed, case_id))
        if not crops:
            logger.info("%s: case %s has no tumour slice; no crops", out, case_id)
            continue
        arrays_path, record_path = case_files(out, case_id)
        with atomic_path(arrays_path) as temporary:
            np.savez_compressed(temporary, image=images, label=labels)
        record = {
            "case_id": case_id,
            "package_version": npcseg.__version__,
            "source_cache": settings.source_cache,
            "sequences": list(case.record.get("sequences", load_cache_config(cache).sequences)),
            "image_shape_czyx": list(images.shape),
            "crops": crops,
        }
        atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
        num_crops += len(crops)
    logger.info("%s: %d new crop(s)", out, num_crops)
    return out
