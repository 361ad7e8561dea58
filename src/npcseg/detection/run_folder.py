"""The detector run folder's bookkeeping: claiming a folder, ``run.json`` and ``log.csv``.

Layout of a detector run ``RUN``::

    config.yaml          the resolved DetectorConfig (written first: the folder's identity)
    preprocessing.yaml   the config of the cache it was trained on
    run.json             versions, seed, cache, case ids, slice counts, timings, feature-cache statistics, status
    log.csv              one row per finished epoch (:data:`LOG_COLUMNS`)
    checkpoint_last.pt   agent (networks, optimiser, replay), finished epochs, random states, log (resume)
    detector.pt          the final Q-network and what inference needs (written when the last epoch is done)

A rerun into the folder must have the same config (except a larger ``epochs``: training then continues), the same
case ids and a cache of the same preprocessing config; otherwise it is refused with the differences listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from npcseg.detection.config import DetectorConfig
from npcseg.training.run_folder import CONFIG_FILENAME as CONFIG_FILENAME
from npcseg.training.run_folder import claim_run_folder
from npcseg.training.run_folder import finish_run as finish_run
from npcseg.training.run_folder import start_session as start_training_session
from npcseg.training.run_folder import versions as training_versions
from npcseg.training.run_folder import write_log as write_training_log

LOG_FILENAME = "log.csv"
LAST_CHECKPOINT_FILENAME = "checkpoint_last.pt"
DETECTOR_FILENAME = "detector.pt"
LOG_COLUMNS = (
    "epoch",
    "loss",
    "reward",
    "train_iou",
    "train_recall",
    "eps_priori",
    "eps",
    "seconds",
    "num_updates",
    "cache_hit_rate",
    "val_recall_mean",
    "val_recall_min",
    "val_iou_mean",
    "val_iou_min",
)
"""``log.csv`` columns: 0-based epoch; mean L1 loss of its optimiser steps; mean summed reward of its training
episodes; mean IoU and recall of their final boxes; the exploration probabilities used; wall seconds; optimiser
steps; fraction of crop-feature look-ups answered from the cache; greedy validation recall and IoU (mean, min;
``nan`` without validation cases)."""


def versions() -> dict[str, str]:
    """Versions of a training run (npcseg, Python, torch, numpy) and gymnasium's."""
    import gymnasium

    return {**training_versions(), "gymnasium": gymnasium.__version__}


def claim_detector_run(
    run_dir: Path, cache: Path, config: DetectorConfig, train_ids: Sequence[str], val_ids: Sequence[str]
) -> dict[str, Any]:
    """Set up ``run_dir`` for this run, or check that it holds this very run; returns its ``run.json``.

    A saved config that differs only by ``epochs`` is updated to the new value (the per-epoch schedules do not
    depend on the total, so training continues).

    Raises:
        ValueError: the folder holds other files, or a run with other settings (the differing fields are named),
            other case ids, or one trained on a cache of another preprocessing config.
    """
    return claim_run_folder(
        run_dir,
        cache,
        config,
        train_ids,
        val_ids,
        what="detector run",
        record={"kind": "dqn-detector", "versions": versions()},
        may_change=("epochs",),
    )


def start_session(run_dir: Path, **facts: Any) -> None:
    """Mark the run as running and count one more training session (versions with gymnasium's)."""
    start_training_session(run_dir, versions=versions(), **facts)


def write_log(run_dir: Path, rows: Sequence[dict[str, float]]) -> None:
    """Rewrite ``log.csv`` (one row per finished epoch, columns :data:`LOG_COLUMNS`) atomically."""
    write_training_log(run_dir, rows, LOG_COLUMNS)
