"""Untrained DEU run folders for the speed benchmarks (timings only: the masks they predict mean nothing).

Imported by the benchmark scripts in this folder (run as ``python benchmarks/<script>.py``, which puts this folder
on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from npcseg.config import save_config
from npcseg.models import build_model
from npcseg.preprocessing.config import preset
from npcseg.training.config import TrainingConfig

WIDTHS = {"narrow": {"widths": [8, 16, 32, 64, 128, 128], "growth_rate": 8}, "default": {}}
"""DEU model options by name: the demo's narrow network and the default one."""


def make_run(run_dir: Path, model: str, seed: int = 0) -> None:
    """Write a run folder holding an untrained DEU (``WIDTHS[model]``) on the ``deu`` pre-processing."""
    torch.manual_seed(seed)
    config = TrainingConfig(model="deu", model_options=WIDTHS[model])
    network = build_model("deu", config.model_config())
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / "config.yaml")
    save_config(preset("deu"), run_dir / "preprocessing.yaml")
    checkpoint = {"model": network.state_dict(), "model_name": "deu", "model_config": config.model_config_dict()}
    torch.save(checkpoint, run_dir / "checkpoint_best.pt")
