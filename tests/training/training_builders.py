"""Tiny preprocessed caches for the training tests (written directly in the cache's file layout)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from npcseg.config import save_config
from npcseg.preprocessing.cache import case_files
from npcseg.preprocessing.config import PreprocessingConfig

#: The tiny DEU of the tests (about 20k parameters): fast at 64 x 64 on one thread.
TINY_DEU = {"widths": [8, 8, 16, 16, 16, 16], "growth_rate": 8, "num_dense_layers": 2, "bottleneck_factor": 2}


def write_cache(
    out: Path, cases: dict[str, tuple[np.ndarray, np.ndarray | None]], sequences: tuple[str, ...] = ("t1", "t2")
) -> Path:
    """Write ``cases`` (image float32 (C, Z, S, S), label uint8 (Z, S, S) or None) as a preprocessed cache."""
    size = next(iter(cases.values()))[0].shape[-1]
    out.mkdir(parents=True, exist_ok=True)
    save_config(PreprocessingConfig(sequences=sequences, slice_size=size), out / "preprocessing.yaml")
    for case_id, (image, label) in cases.items():
        arrays_path, record_path = case_files(out, case_id)
        arrays_path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"image": image.astype(np.float32)}
        if label is not None:
            arrays["label"] = label.astype(np.uint8)
        np.savez_compressed(arrays_path, **arrays)  # type: ignore[arg-type]
        record_path.write_text(json.dumps({"case_id": case_id, "image_shape_czyx": list(image.shape)}))
    return out


def blob_case(
    seed: int, num_slices: int = 6, size: int = 64, num_channels: int = 2, tumour_every: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A case of bright discs on a dim noisy background; the label is the disc (every ``tumour_every`` slice).

    Channel ``c`` shows the disc with contrast ``0.5 + 0.2 c`` so each channel alone suffices.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((num_channels, num_slices, size, size), dtype=np.float32)
    label = np.zeros((num_slices, size, size), dtype=np.uint8)
    for z in range(num_slices):
        if z % tumour_every == 0:
            centre = rng.uniform(size * 0.3, size * 0.7, size=2)
            radius = rng.uniform(size * 0.1, size * 0.18)
            label[z] = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
        for channel in range(num_channels):
            noise = rng.normal(0.0, 0.03, size=(size, size))
            image[channel, z] = 0.2 + (0.5 + 0.2 * channel) * label[z] + noise
    return np.clip(image, 0.0, 1.0), label


def blob_cache(out: Path, case_ids: list[str], **options: int) -> Path:
    """A cache of ``blob_case`` cases (seeded by their position)."""
    return write_cache(out, {case_id: blob_case(index, **options) for index, case_id in enumerate(case_ids)})
