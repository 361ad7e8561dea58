"""A trained network whose config names initialisation weights (RANet's encoder) loads without that file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from npcseg.inference.runs import TrainedRun, build_network
from npcseg.models import build_model, tiny_config
from npcseg.models.resnet import ResNetEncoder
from npcseg.preprocessing.config import PreprocessingConfig


def test_build_network_ignores_the_initialisation_weights_file(tmp_path: Path) -> None:
    config = tiny_config("ranet")
    encoder = ResNetEncoder(
        depth=config.encoder_depth, in_channels=len(config.sequences), base_width=config.encoder_width
    )
    weights = tmp_path / "imagenet.pt"
    torch.save(encoder.state_dict(), weights)
    config = dataclasses.replace(config, encoder_weights=str(weights))
    trained = build_model("ranet", config)  # reads the file
    weights.unlink()  # the run moved to another machine
    run = TrainedRun(
        run_dir=tmp_path,
        model_name="ranet",
        model_config=config,
        sequences=tuple(config.sequences),
        threshold=0.5,
        preprocessing=PreprocessingConfig(),
        checkpoint=tmp_path / "checkpoint_best.pt",
        checkpoint_info={},
    )
    network = build_network(run, trained.state_dict())
    for name, value in trained.state_dict().items():
        assert torch.equal(network.state_dict()[name], value), name
