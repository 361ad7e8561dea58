"""Tiny cases and run folders for the inference tests.

Cases: an analytic head (ellipsoid) with a bright sphere, sampled by T2 on a (possibly oblique) 64 x 64 grid and
by T1 on the same field of view at half the in-plane resolution (no patient movement: the run's pre-processing
uses ``registration_source='identity'`` unless a test says otherwise).

Runs: a tiny DEU (64 x 64 slices) with random weights, saved in the run-folder format of the DEU notes
(``config.yaml``, ``preprocessing.yaml``, ``checkpoint_best.pt``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from npcseg.config import config_to_dict, save_config
from npcseg.io.cohort import Case, load_case
from npcseg.io.images import write_image
from npcseg.io.volume import Grid
from npcseg.models import build_model, tiny_config
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.training.config import TrainingConfig

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def oblique_lps_direction() -> tuple[float, ...]:
    """A proper rotation with tilted slices and the first two axes reversed (RAS-stored data seen in LPS)."""
    ax, az = math.radians(17.0), math.radians(-11.0)
    rot_x = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rot_z = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return tuple(float(v) for v in (np.diag([-1.0, -1.0, 1.0]) @ rot_z @ rot_x).ravel())


def tiny_preprocessing(**changes: Any) -> PreprocessingConfig:
    """DEU pre-processing on 64 x 64 slices, already co-registered inputs (no registration)."""
    settings: dict[str, Any] = {"slice_size": 64, "registration_source": "identity", **changes}
    return PreprocessingConfig(**settings)


def _points(grid: Grid) -> np.ndarray:
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.shape_zyx), indexing="ij")
    return grid.index_to_physical(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))


def _scene(points: np.ndarray, t2_grid: Grid, head: float, structure: float) -> np.ndarray:
    centre = t2_grid.index_to_physical((np.asarray(t2_grid.size_xyz, dtype=float) - 1) / 2)[0]
    local = (points - centre) @ t2_grid.direction_matrix
    values = np.full(len(points), 20.0)
    values[np.sum((local / np.array([13.0, 11.0, 40.0])) ** 2, axis=1) <= 1] = head
    values[np.linalg.norm(local - np.array([4.0, -3.0, 0.0]), axis=1) <= 5.0] = structure
    return values


def build_case(
    folder: Path,
    *,
    direction: tuple[float, ...] = IDENTITY,
    size_xyz: tuple[int, int, int] = (64, 64, 6),
    spacing_xyz: tuple[float, float, float] = (0.5, 0.5, 4.0),
    origin_xyz: tuple[float, float, float] = (-70.3, 95.7, -30.2),
    sequences: tuple[str, ...] = ("t1", "t2"),
    with_label: bool = True,
) -> Case:
    """Write ``folder/{t1,t2,label}.nii.gz`` (T1 at twice T2's in-plane spacing) and return the case."""
    t2_grid = Grid(size_xyz, spacing_xyz, origin_xyz, direction)
    t1_spacing = (spacing_xyz[0] * 2, spacing_xyz[1] * 2, spacing_xyz[2])
    shift = np.array([spacing_xyz[0] / 2, spacing_xyz[1] / 2, 0.0])
    t1_origin = tuple(float(v) for v in np.asarray(origin_xyz) + t2_grid.direction_matrix @ shift)
    t1_grid = Grid((size_xyz[0] // 2, size_xyz[1] // 2, size_xyz[2]), t1_spacing, t1_origin, direction)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    contrasts = {"t2": (300.0, 1000.0), "t1": (500.0, 900.0), "t1c": (600.0, 1200.0)}
    for sequence in sequences:
        grid = t2_grid if sequence == "t2" else t1_grid
        values = _scene(_points(grid), t2_grid, *contrasts[sequence]).reshape(grid.shape_zyx)
        write_image(grid.apply_to(sitk.GetImageFromArray(values.astype(np.int16))), folder / f"{sequence}.nii.gz")
    if with_label:
        label = (_scene(_points(t2_grid), t2_grid, 0.0, 1.0) == 1.0).reshape(t2_grid.shape_zyx)
        write_image(t2_grid.apply_to(sitk.GetImageFromArray(label.astype(np.uint8))), folder / "label.nii.gz")
    return load_case(folder)


def tiny_network(seed: int, sequences: tuple[str, ...] = ("t1", "t2"), model: str = "deu") -> torch.nn.Module:
    """A tiny DEU with seeded random weights and PyTorch's default output bias, so that its untrained
    probabilities straddle 0.5 and thresholds split them (a prior-probability bias would put them all near 0)."""
    torch.manual_seed(seed)
    config = dataclasses.replace(tiny_config(model), sequences=sequences, prior_probability=None)
    network = build_model(model, config)
    return network.eval()


def make_run(
    run_dir: Path,
    *,
    seed: int = 0,
    sequences: tuple[str, ...] = ("t1", "t2"),
    threshold: float = 0.5,
    preprocessing: PreprocessingConfig | None = None,
    model: str = "deu",
    best: bool = True,
) -> torch.nn.Module:
    """Write a run folder with a tiny random network; returns the network."""
    network = tiny_network(seed, sequences, model)
    model_config = config_to_dict(network.config)
    options = {key: value for key, value in model_config.items() if key != "sequences"}
    run_dir.mkdir(parents=True, exist_ok=True)
    training = TrainingConfig(model=model, model_options=options, sequences=sequences, threshold=threshold)
    save_config(training, run_dir / "config.yaml")
    save_config(preprocessing if preprocessing is not None else tiny_preprocessing(), run_dir / "preprocessing.yaml")
    state = {key: value.clone() for key, value in network.state_dict().items()}
    if best:
        checkpoint = {"model": state, "epoch": 3, "val_dice": 0.5, "model_name": model, "model_config": model_config}
        torch.save(checkpoint, run_dir / "checkpoint_best.pt")
    else:
        torch.save({"model": state, "epoch": 4, "step": 40, "best_score": 0.1}, run_dir / "checkpoint_last.pt")
    return network
