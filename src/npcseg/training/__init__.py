"""Training of the segmentation networks: settings, the resumable trainer, checkpoints, validation."""

from __future__ import annotations

from npcseg.training.cases import holdout_split
from npcseg.training.config import TrainingConfig, load_training_config
from npcseg.training.trainer import TrainResult, train

__all__ = ["TrainResult", "TrainingConfig", "holdout_split", "load_training_config", "train"]
