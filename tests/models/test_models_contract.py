"""The contract every registered network passes (parametrised over the registry).

Each network is built from its ``tiny_config`` and, where its config accepts them, with one and with three input
sequences. Inputs are ``(2, C, 64, 64)``, or the smallest multiple of the network's ``size_divisor`` attribute
(when it has one) that is at least 64.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from npcseg.config import config_from_dict, config_to_dict
from npcseg.models import build_model, model_config_class, model_names, tiny_config

SIZE = 64
SEQUENCE_SETS = {1: ("t2",), 3: ("t1", "t1c", "t2")}
CASES = [(name, count) for name in model_names() for count in SEQUENCE_SETS]


def _config(name: str, num_sequences: int | None = None) -> Any:
    """The tiny config of ``name``, with ``num_sequences`` sequences when given (skips if the model refuses it)."""
    config = tiny_config(name)
    if num_sequences is None:
        return config
    try:
        return dataclasses.replace(config, sequences=SEQUENCE_SETS[num_sequences])
    except ValueError as error:
        pytest.skip(f"{name} does not take {num_sequences} sequence(s): {error}")


def _tiny(name: str, num_sequences: int | None = None) -> tuple[torch.nn.Module, torch.Tensor]:
    """The tiny network and a batch of 2 inputs for it."""
    config = _config(name, num_sequences)
    torch.manual_seed(0)
    model = build_model(name, config)
    return model, _input(model, len(config.sequences))


def _size(model: torch.nn.Module) -> int:
    divisor = int(getattr(model, "size_divisor", 1))
    return math.ceil(SIZE / divisor) * divisor


def _input(model: torch.nn.Module, num_channels: int, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    size = _size(model)
    return torch.randn(batch, num_channels, size, size, generator=generator)


def test_registry_lists_the_deu_and_seqseg_networks() -> None:
    assert {"deu", "deu-single", "ranet", "unet", "unet-se", "unet-cram", "unet-rram", "unet-cram-rram"} <= set(
        model_names()
    )


@pytest.mark.parametrize("name", model_names())
def test_config_is_frozen_and_round_trips_through_dicts(name: str) -> None:
    config: Any = tiny_config(name)
    assert dataclasses.is_dataclass(type(config))
    assert isinstance(config, model_config_class(name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sequences = ("x",)
    assert config_from_dict(type(config), config_to_dict(config)) == config
    assert build_model(name, config_to_dict(config)) is not None


@pytest.mark.parametrize(("name", "num_sequences"), CASES)
def test_output_is_finite_logits_of_input_size(name: str, num_sequences: int) -> None:
    model, images = _tiny(name, num_sequences)
    assert images.shape[1] == num_sequences
    logits = model(images)
    assert logits.shape == (2, 1, *images.shape[-2:])
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("name", "num_sequences"), CASES)
def test_every_parameter_gets_a_gradient(name: str, num_sequences: int) -> None:
    model, images = _tiny(name, num_sequences)
    logits = model(images)
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    (logits * weights).sum().backward()
    for parameter_name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", model_names())
def test_state_dict_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    model, images = _tiny(name)
    with torch.no_grad():
        model(images)  # training mode: batch-norm running statistics (buffers) move away from their defaults
    model.eval()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(123)
    restored = build_model(name, tiny_config(name)).eval()
    restored.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        assert torch.equal(model(images), restored(images))


@pytest.mark.parametrize("name", model_names())
def test_eval_mode_output_is_deterministic(name: str) -> None:
    model, images = _tiny(name)
    model.train()
    with torch.no_grad():
        model(images)  # a training-mode pass updates batch-norm running statistics, if any
    model.eval()
    with torch.no_grad():
        first = model(images)
        assert torch.equal(first, model(images))
        assert torch.isfinite(first).all()


@pytest.mark.parametrize(("name", "num_sequences"), CASES)
def test_wrong_channel_count_is_a_clear_value_error(name: str, num_sequences: int) -> None:
    model, images = _tiny(name, num_sequences)
    wrong = torch.cat([images, images[:, :1]], dim=1)
    with pytest.raises(ValueError, match="channels"):
        model(wrong)
    with pytest.raises(ValueError):
        model(images[0])


def test_unknown_model_and_bad_config_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("no-such-net")
    with pytest.raises(ValueError, match="unknown key"):
        build_model("deu", {"width": [8] * 6})
    with pytest.raises(ValueError, match="expects a DEUSingleConfig"):
        build_model("deu-single", model_config_class("deu")())
