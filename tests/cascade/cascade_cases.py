"""Hand-built preprocessed caches for the cascade tests (crops, presence, cascade)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import torch
from torch import nn

from npcseg.config import save_config
from npcseg.detection.boxes import Box, box_of_mask
from npcseg.preprocessing.config import PreprocessingConfig


def tiny_pieces() -> tuple[dict[str, object], dict[str, object]]:
    """``(detector, presence)`` settings of a cascade of seconds on the T1 + T2 tiny cohort (one thread each: several
    on a loaded machine spin against each other)."""
    detector = {
        "sequences": ["t1", "t2"],
        "backbone_width": 8,
        "input_size": 32,
        "hidden_sizes": [16],
        "epochs": 1,
        "batch_size": 8,
        "replay_size": 64,
        "target_sync_steps": 10,
        "max_steps": 4,
        "num_threads": 1,
    }
    presence = {
        "sequences": ["t1", "t2"],
        "base_width": 4,
        "input_size": 32,
        "epochs": 1,
        "steps_per_epoch": 4,
        "num_threads": 1,
    }
    return detector, presence


def write_fake_cache(root: Path, num_cases: int = 3, size: int = 32, slices: int = 5) -> Path:
    """A cache in the ``npcseg preprocess`` format: t1, t2 channels; a square tumour on slices 1-3 (none in the
    last case), channel 0 = the tumour mask, channel 1 noise."""
    config = PreprocessingConfig(slice_size=size, registration_source="identity")
    (root / "cases").mkdir(parents=True)
    save_config(config, root / "preprocessing.yaml")
    rng = np.random.default_rng(0)
    for index in range(num_cases):
        label = np.zeros((slices, size, size), dtype=np.uint8)
        if index < num_cases - 1:
            label[1:4, 8 + index : 16 + index, 10 : 16 + 2 * index] = 1
        image = np.stack([label.astype(np.float32), rng.random((slices, size, size), dtype=np.float32)])
        np.savez_compressed(root / "cases" / f"case{index}.npz", image=image, label=label)
        (root / "cases" / f"case{index}.json").write_text(
            json.dumps({"case_id": f"case{index}", "sequences": ["t1", "t2"]})
        )
    return root


class MaskChannelDetector:
    """A stand-in detector: the box around channel 0 >= 0.5 (the tumour mask in these caches), or a fixed box."""

    def __init__(self, sequences: tuple[str, ...] = ("t1", "t2"), fallback: Box = Box(2, 2, 10, 10)) -> None:
        self.sequences = sequences
        self.fallback = fallback
        self.calls: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> SimpleNamespace:
        self.calls.append(image)
        return SimpleNamespace(box=box_of_mask(image[0] >= 0.5) or self.fallback)


class ThresholdNetwork(nn.Module):
    """A stand-in segmenter: logit 40 * (channel 0 - 0.5), i.e. the crop's channel 0 thresholded at 0.5."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 40.0 * (images[:, :1] - 0.5)


class FixedPresence:
    """A stand-in presence classifier returning given per-slice probabilities."""

    def __init__(self, probabilities: np.ndarray, sequences: tuple[str, ...] = ("t1", "t2")) -> None:
        self.sequences = sequences
        self.values = np.asarray(probabilities, dtype=np.float64)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        assert image.shape[1] == self.values.size
        return self.values


def crossval_cases() -> ModuleType:
    """``tests/crossval/crossval_cases.py`` (the tiny labelled cohort of the cross-validation tests), imported by
    path: pytest puts only this test folder on ``sys.path``."""
    name = "crossval_cases"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "crossval" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
