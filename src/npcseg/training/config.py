"""Settings of one training run (METHODS.md method 1, Training: Dice loss, Adam at 1e-4, batch size 1, 200
epochs, augmentation by flipping and re-scaling). Paper-silent values are ours and are documented per field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npcseg.config import config_to_dict, load_config_over
from npcseg.data.augmentation import AugmentationConfig
from npcseg.io.cohort import SEQUENCES


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a training run's result (saved as the run's ``config.yaml``)."""

    model: str = "deu"
    """Registered network name (``npcseg.models.model_names()``), e.g. ``deu`` or ``deu-single``."""
    model_options: dict[str, Any] = field(default_factory=dict)
    """Fields of the network's config class other than ``sequences`` (e.g. ``widths``, ``growth_rate``)."""
    sequences: tuple[str, ...] = ("t1", "t2")
    """Input sequences in channel order, picked by name from the cache (a T1+T2+T1c cache serves a T2 model)."""
    loss: str = "dice"
    """Loss name (``npcseg.losses.loss_names()``); the paper's is Dice."""
    loss_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the loss (e.g. ``batch_dice: true``, ``smooth: 1.0``)."""
    learning_rate: float = 1e-4
    """Adam's learning rate (paper: 1e-4; constant, unless ``learning_rate_drop_epoch`` is set)."""
    learning_rate_drop_epoch: int | None = None
    """Epochs after which the learning rate is multiplied by ``learning_rate_drop_factor`` (a step drop, applied
    at epoch starts; SeqSeg's joint cascade training: 1e-3 -> 1e-4 after 25 epochs). ``None`` = constant."""
    learning_rate_drop_factor: float = 0.1
    """Factor of the step drop (in (0, 1]); used only with ``learning_rate_drop_epoch``."""
    batch_size: int = 1
    """Slices per optimiser step (paper: 1)."""
    epochs: int = 200
    """Passes over the training slices (paper: 200); an epoch is ``max_slices_per_epoch`` draws when set."""
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    """Random flips and re-scaling of training slices (identical for image and label)."""
    tumour_oversampling: float = 0.0
    """Fraction in [0, 1] of each epoch's draws forced from slices that hold tumour; the rest uniform over all
    slices (0 = plain shuffling, the paper's setting as far as it says)."""
    max_slices_per_epoch: int | None = None
    """Cap on the slices drawn per epoch (``None`` = every training slice once)."""
    seed: int = 0
    """Seed of the weights' initialisation, the slice order and the augmentation."""
    num_threads: int = 0
    """CPU threads for torch (``torch.set_num_threads``); 0 keeps torch's default."""
    checkpoint_every_steps: int = 100
    """Write ``checkpoint_last.pt`` every this many optimiser steps (and at every epoch end); 0 = epoch ends
    only. A rerun continues from the last one."""
    threshold: float = 0.5
    """Probability at or above which a pixel counts as tumour, in validation and in prediction."""
    validation_fraction: float = 0.1
    """Fraction of the labelled cases held out for validation when no validation ids are given (our choice,
    one fold of the paper's 10-fold cross-validation); at least one case when above 0."""
    validation_batch_size: int = 8
    """Slices per forward pass during validation (memory only; does not change results)."""

    def __post_init__(self) -> None:
        from npcseg.losses import loss_names
        from npcseg.models import model_names

        if self.model not in model_names():
            raise ValueError(f"unknown model {self.model!r}; known models: {model_names()}")
        if self.loss not in loss_names():
            raise ValueError(f"unknown loss {self.loss!r}; known losses: {loss_names()}")
        if "sequences" in self.model_options:
            raise ValueError("model_options must not set 'sequences'; use the training config's 'sequences'")
        if not self.sequences or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must name one or more distinct sequences, got {list(self.sequences)}")
        unknown = [sequence for sequence in self.sequences if sequence not in SEQUENCES]
        if unknown:
            raise ValueError(f"unknown sequence(s) {unknown}; use names from {list(SEQUENCES)}")
        checks = {
            "learning_rate": self.learning_rate > 0,
            "learning_rate_drop_epoch": self.learning_rate_drop_epoch is None or self.learning_rate_drop_epoch >= 1,
            "learning_rate_drop_factor": 0.0 < self.learning_rate_drop_factor <= 1.0,
            "batch_size": self.batch_size >= 1,
            "epochs": self.epochs >= 1,
            "tumour_oversampling": 0.0 <= self.tumour_oversampling <= 1.0,
            "max_slices_per_epoch": self.max_slices_per_epoch is None or self.max_slices_per_epoch >= 1,
            "num_threads": self.num_threads >= 0,
            "checkpoint_every_steps": self.checkpoint_every_steps >= 0,
            "threshold": 0.0 < self.threshold < 1.0,
            "validation_fraction": 0.0 <= self.validation_fraction < 1.0,
            "validation_batch_size": self.validation_batch_size >= 1,
        }
        bad = [name for name, good in checks.items() if not good]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"invalid training setting(s): {values} (see TrainingConfig's field docs)")
        self.model_config()  # the network's own checks (widths, groups, sequence count) fail early

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of the 0-based ``epoch``: ``learning_rate``, times ``learning_rate_drop_factor`` from
        epoch ``learning_rate_drop_epoch`` on (i.e. after that many epochs)."""
        if self.learning_rate_drop_epoch is not None and epoch >= self.learning_rate_drop_epoch:
            return self.learning_rate * self.learning_rate_drop_factor
        return self.learning_rate

    def model_config(self) -> Any:
        """The network's resolved config dataclass (``model_options`` plus ``sequences``)."""
        from npcseg.models import make_config

        return make_config(self.model, {**self.model_options, "sequences": list(self.sequences)})

    def model_config_dict(self) -> dict[str, Any]:
        """:meth:`model_config` as plain data (stored in checkpoints)."""
        return config_to_dict(self.model_config())

    def with_changes(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields replaced (validated)."""
        return dataclasses.replace(self, **changes)


def load_training_config(path: Path, base: TrainingConfig | None = None) -> TrainingConfig:
    """Read a YAML file of (some) :class:`TrainingConfig` fields on top of ``base`` (default: the paper's).

    The nested ``augmentation`` section merges key by key. Unknown keys and wrongly typed values are
    ``ValueError``s naming the file and the key.
    """
    return load_config_over(base if base is not None else TrainingConfig(), path)
