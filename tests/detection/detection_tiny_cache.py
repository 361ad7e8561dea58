"""A tiny preprocessed cache for detector tests, written straight in the cache format (no images to preprocess).

Each case: 3 channels (t1, t1c, t2) of ``num_slices`` slices of ``size`` x ``size``; a dim background with a little
noise, and on the tumour slices a bright square (the label) whose position and size depend on the case and slice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from npcseg.config import save_config
from npcseg.preprocessing.config import PreprocessingConfig

SEQUENCES = ("t1", "t1c", "t2")


def write_tiny_detection_cache(
    root: Path, num_cases: int = 3, *, size: int = 32, num_slices: int = 4, tumour_slices: tuple[int, ...] = (1, 2)
) -> list[str]:
    """Write the cache ``root`` and return its case ids (``case000`` ...)."""
    save_config(
        PreprocessingConfig(sequences=SEQUENCES, slice_size=size, registration_source="identity"),
        root / "preprocessing.yaml",
    )
    (root / "cases").mkdir(parents=True, exist_ok=True)
    case_ids = [f"case{index:03d}" for index in range(num_cases)]
    for index, case_id in enumerate(case_ids):
        rng = np.random.default_rng(index)
        image = (0.1 + 0.02 * rng.standard_normal((len(SEQUENCES), num_slices, size, size))).astype(np.float32)
        label = np.zeros((num_slices, size, size), dtype=np.uint8)
        for z in tumour_slices:
            side = size // 8 + (index + z) % 3
            top = size // 4 + (3 * index + 2 * z) % (size // 3)
            left = size // 3 + (5 * index + z) % (size // 3)
            label[z, top : top + side, left : left + side] = 1
            image[:, z][:, label[z] == 1] = 0.9
        np.savez_compressed(root / "cases" / f"{case_id}.npz", image=image, label=label)
        (root / "cases" / f"{case_id}.json").write_text(json.dumps({"case_id": case_id}) + "\n")
    return case_ids


def train_tiny_segmentation_run(cache: Path, run_dir: Path, train_ids: list[str]) -> Path:
    """A one-epoch tiny U-Net run on ``train_ids`` of the cache (a real run folder, for the heat-map detector)."""
    from npcseg.models.registry import tiny_config
    from npcseg.training.config import TrainingConfig
    from npcseg.training.trainer import train

    options = {key: value for key, value in vars(tiny_config("unet")).items() if key != "sequences"}
    config = TrainingConfig(model="unet", model_options=options, sequences=SEQUENCES, epochs=1, batch_size=2)
    train(cache, run_dir, config, train_ids, [], progress=False)
    return run_dir
