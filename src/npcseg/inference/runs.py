"""Reading trained models back from run folders (written by ``npcseg.training``) for inference.

A training run folder (``RUN/``) holds ``config.yaml`` (the resolved ``TrainingConfig``), ``preprocessing.yaml``
(the cache's pre-processing settings), ``checkpoint_best.pt`` and ``checkpoint_last.pt``. A cross-validation
folder (``CVRUN/``) holds one such run per fold in ``fold_<k>/``; given as a model it stands for the ensemble of
all its folds.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from npcseg.config import load_config
from npcseg.models.registry import build_model, make_config
from npcseg.preprocessing.config import PreprocessingConfig

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "config.yaml"
PREPROCESSING_FILENAME = "preprocessing.yaml"
BEST_CHECKPOINT = "checkpoint_best.pt"
LAST_CHECKPOINT = "checkpoint_last.pt"
FOLD_PATTERN = re.compile(r"^fold_(\d+)\Z")


@dataclass(frozen=True)
class TrainedRun:
    """What inference needs from one training run.

    Attributes:
        run_dir: the run folder.
        model_name: registry name of the network.
        model_config: the network's config dataclass instance (its ``sequences`` are the input channels, in order).
        sequences: input sequences of the network, in channel order.
        threshold: probability at or above which a voxel is foreground.
        preprocessing: the pre-processing the network was trained on (its ``preprocessing.yaml``).
        checkpoint: the checkpoint file the weights come from.
        checkpoint_info: epoch and validation Dice of that checkpoint, where it records them.
    """

    run_dir: Path
    model_name: str
    model_config: Any
    sequences: tuple[str, ...]
    threshold: float
    preprocessing: PreprocessingConfig
    checkpoint: Path
    checkpoint_info: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """Plain data for ``predict.json``."""
        return {
            "run_dir": str(self.run_dir.resolve()),
            "checkpoint": str(self.checkpoint.resolve()),
            "model": self.model_name,
            "sequences": list(self.sequences),
            "threshold": self.threshold,
            **self.checkpoint_info,
        }


def is_run_dir(path: Path) -> bool:
    """True when ``path`` looks like a training run folder (it has ``config.yaml``)."""
    return (Path(path) / CONFIG_FILENAME).is_file()


def fold_dirs(path: Path) -> list[Path]:
    """The ``fold_<k>/`` sub-folders of a cross-validation folder, sorted by k (empty for anything else)."""
    path = Path(path)
    if not path.is_dir():
        return []
    folds = [(int(match.group(1)), child) for child in path.iterdir() if (match := FOLD_PATTERN.match(child.name))]
    return [child for _, child in sorted(folds) if child.is_dir()]


def expand_model_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run folders of the given models: a run stands for itself, a cross-validation folder for all its folds.

    Raises:
        FileNotFoundError: a path is neither a run folder nor a cross-validation folder, or a fold is not a run.
        ValueError: no model was given.
    """
    runs: list[Path] = []
    for path in (Path(item) for item in paths):
        if is_run_dir(path):
            found = [path]
        elif folds := fold_dirs(path):
            not_runs = [fold for fold in folds if not is_run_dir(fold)]
            if not_runs:
                raise FileNotFoundError(
                    f"{path}: cross-validation fold(s) {[fold.name for fold in not_runs]} hold no {CONFIG_FILENAME} "
                    "(training unfinished?)"
                )
            found = folds
        elif not path.exists():
            raise FileNotFoundError(f"{path}: model folder not found")
        else:
            raise FileNotFoundError(
                f"{path}: neither a training run ({CONFIG_FILENAME} + {BEST_CHECKPOINT}) nor a cross-validation "
                "folder (fold_<k>/ runs)"
            )
        for run in found:
            if any(run.resolve() == known.resolve() for known in runs):
                logger.warning("%s: given more than once; used once", run)
            else:
                runs.append(run)
    if not runs:
        raise ValueError("no model given: pass at least one run or cross-validation folder")
    return runs


def _training_fields(path: Path) -> dict[str, Any]:
    """The fields of the run's ``config.yaml`` (a ``TrainingConfig``) that inference needs."""
    from npcseg.training.config import TrainingConfig

    config = load_config(TrainingConfig, path)
    return {
        "model": config.model,
        "model_options": dict(config.model_options),
        "sequences": tuple(config.sequences),
        "threshold": float(config.threshold),
    }


def checkpoint_path(run_dir: Path) -> Path:
    """``checkpoint_best.pt``, or ``checkpoint_last.pt`` (with a warning) when the run has no best checkpoint."""
    best, last = Path(run_dir) / BEST_CHECKPOINT, Path(run_dir) / LAST_CHECKPOINT
    if best.is_file():
        return best
    if last.is_file():
        logger.warning("%s: no %s; using %s", run_dir, BEST_CHECKPOINT, LAST_CHECKPOINT)
        return last
    raise FileNotFoundError(f"{run_dir}: no checkpoint ({BEST_CHECKPOINT} or {LAST_CHECKPOINT})")


def _load_checkpoint(path: Path) -> dict[str, Any]:
    from npcseg.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)  # torch.load(weights_only=True) on the CPU, errors naming the file
    if not isinstance(checkpoint.get("model"), dict):
        raise ValueError(f"{path}: not an npcseg checkpoint (no 'model' state dict)")
    return checkpoint


def read_run(run_dir: Path) -> tuple[TrainedRun, dict[str, torch.Tensor]]:
    """Read a run's settings and its checkpoint's weights (``torch.load(weights_only=True)``, on the CPU).

    Raises:
        FileNotFoundError: ``config.yaml``, ``preprocessing.yaml`` or every checkpoint is missing.
        ValueError: the files disagree (model name or sequences) or cannot be read.
    """
    run_dir = Path(run_dir)
    config_file = run_dir / CONFIG_FILENAME
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: not a training run (no {CONFIG_FILENAME})")
    preprocessing_file = run_dir / PREPROCESSING_FILENAME
    if not preprocessing_file.is_file():
        raise FileNotFoundError(
            f"{preprocessing_file}: not found; the run does not say how its inputs were pre-processed"
        )
    fields = _training_fields(config_file)
    preprocessing = load_config(PreprocessingConfig, preprocessing_file)
    checkpoint_file = checkpoint_path(run_dir)
    checkpoint = _load_checkpoint(checkpoint_file)

    model_name = fields["model"]
    if "model_name" in checkpoint and checkpoint["model_name"] != model_name:
        raise ValueError(
            f"{checkpoint_file}: holds a {checkpoint['model_name']!r} network but {config_file} names {model_name!r}"
        )
    if isinstance(checkpoint.get("model_config"), dict):
        model_config = make_config(model_name, checkpoint["model_config"])
    else:
        model_config = make_config(model_name, {**fields["model_options"], "sequences": list(fields["sequences"])})
    sequences = tuple(model_config.sequences)
    if set(sequences) != set(fields["sequences"]):
        raise ValueError(
            f"{checkpoint_file}: the network takes sequences {list(sequences)} but {config_file} names "
            f"{list(fields['sequences'])}"
        )
    missing = [sequence for sequence in sequences if sequence not in preprocessing.sequences]
    if missing:
        raise ValueError(
            f"{run_dir}: the network needs sequence(s) {missing} that its pre-processing "
            f"({PREPROCESSING_FILENAME}: {list(preprocessing.sequences)}) does not produce"
        )
    info = {key: checkpoint[key] for key in ("epoch", "val_dice") if isinstance(checkpoint.get(key), int | float)}
    run = TrainedRun(
        run_dir=run_dir,
        model_name=model_name,
        model_config=model_config,
        sequences=sequences,
        threshold=fields["threshold"],
        preprocessing=preprocessing,
        checkpoint=checkpoint_file,
        checkpoint_info=info,
    )
    return run, checkpoint["model"]


def build_network(run: TrainedRun, state: dict[str, torch.Tensor]) -> nn.Module:
    """The run's network with its weights loaded, in evaluation mode.

    Raises:
        ValueError: the weights do not fit the network the run's config describes.
    """
    # weights files named for initialisation (e.g. RANet's ImageNet encoder) are not read again: the checkpoint
    # holds every weight, and the file may not exist where the model is used
    config = run.model_config
    if getattr(config, "encoder_weights", None) is not None:
        config = dataclasses.replace(config, encoder_weights=None)
    network = build_model(run.model_name, config)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        config_file = run.run_dir / CONFIG_FILENAME
        raise ValueError(
            f"{run.checkpoint}: the weights do not fit the {run.model_name!r} network of {config_file} "
            f"({str(error).splitlines()[0]})"
        ) from error
    return network.eval()


class SliceSegmenter:
    """A run's network applied to a stack of 2D inputs: :meth:`probabilities` of ``(N, C, S, S)`` -> ``(N, S, S)``
    float32 (sigmoid of the logits, in batches). The cascade's crop segmenter and the heat-map detector use it."""

    def __init__(self, network: nn.Module, sequences: Sequence[str], batch_size: int = 16) -> None:
        self.network = network.eval()
        self.sequences = tuple(sequences)
        self.batch_size = batch_size

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batches = [
            torch.sigmoid(self.network(torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))))
            for start in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(batches)[:, 0].numpy().astype(np.float32) if batches else np.zeros((0, *images.shape[2:]))


def load_slice_segmenter(run_dir: Path) -> tuple[SliceSegmenter, TrainedRun]:
    """The network of a training run folder (:func:`read_run`, :func:`build_network`) and the run's settings."""
    run, state = read_run(Path(run_dir))
    return SliceSegmenter(build_network(run, state), run.sequences), run
