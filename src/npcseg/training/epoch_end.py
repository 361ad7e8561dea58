"""The counters of a training run and the bookkeeping at the end of each epoch.

:class:`RunProgress` holds what :func:`npcseg.training.trainer.train` counts (epoch, step, best score, the
epoch's partial loss sums, timings, the log so far); it is saved in ``checkpoint_last.pt``. :func:`end_epoch`
validates, appends the epoch's row to ``log.csv`` and rewrites ``checkpoint_best.pt`` when the validation Dice
improved.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from npcseg.data.dataset import SliceDataset
from npcseg.training.checkpoint import BEST_FILENAME, save_checkpoint
from npcseg.training.config import TrainingConfig
from npcseg.training.data_parallel import OnDevice
from npcseg.training.run_folder import write_log
from npcseg.training.validation import validate

logger = logging.getLogger(__name__)

__all__ = ["RunProgress", "end_epoch"]


@dataclass
class RunProgress:
    """Mutable counters of a run (saved in ``checkpoint_last.pt``)."""

    epoch: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    best_val_dice: float = math.nan
    epoch_loss_sum: float = 0.0
    epoch_num_batches: int = 0
    epoch_seconds: float = 0.0
    seconds: float = 0.0
    step_seconds: float = 0.0
    num_slices: int = 0
    history: list[dict[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def end_epoch(
    run_dir: Path,
    config: TrainingConfig,
    model: torch.nn.Module,
    loss_function: torch.nn.Module,
    val_data: SliceDataset | None,
    state: RunProgress,
) -> None:
    """Validate, log the epoch, and update ``checkpoint_best.pt`` when the validation Dice improved."""
    assert state.history is not None
    started = time.perf_counter()
    result = (
        validate(model, val_data, loss_function, threshold=config.threshold, batch_size=config.validation_batch_size)
        if val_data is not None
        else None
    )
    seconds = state.epoch_seconds + time.perf_counter() - started
    state.seconds += seconds
    epoch_number = state.epoch + 1
    row = {
        "epoch": epoch_number,
        "train_loss": state.epoch_loss_sum / max(state.epoch_num_batches, 1),
        "val_loss": result.loss if result is not None else math.nan,
        "val_dice": result.dice if result is not None else math.nan,
        "val_slice_dice": result.slice_dice if result is not None else math.nan,
        "seconds": seconds,
        "learning_rate": config.learning_rate_at(state.epoch),
    }
    state.history.append(row)
    write_log(run_dir, state.history)
    weights = model.network if isinstance(model, OnDevice) else model
    score = result.dice if result is not None else math.inf  # without validation the last epoch is the best
    if score > state.best_score or result is None:
        state.best_score = score
        state.best_epoch = epoch_number
        state.best_val_dice = result.dice if result is not None else math.nan
        save_checkpoint(
            {
                "model": weights.state_dict(),
                "epoch": epoch_number,
                "val_dice": state.best_val_dice,
                "model_name": config.model,
                "model_config": config.model_config_dict(),
            },
            run_dir / BEST_FILENAME,
        )
    logger.debug("epoch %d: %s", epoch_number, row)
