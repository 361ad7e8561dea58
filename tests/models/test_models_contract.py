"""The contract every registered network passes (parametrised over the registry)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from npcseg.config import config_from_dict, config_to_dict
from npcseg.models import build_model, model_config_class, model_names, tiny_config

SIZE = 64


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, tiny_config(name))


def _input(name: str, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    num_channels = len(tiny_config(name).sequences)
    return torch.randn(batch, num_channels, SIZE, SIZE, generator=generator)


def test_registry_lists_the_deu_variants() -> None:
    assert {"deu", "deu-single"} <= set(model_names())


@pytest.mark.parametrize("name", model_names())
def test_config_is_frozen_and_round_trips_through_dicts(name: str) -> None:
    config: Any = tiny_config(name)
    assert dataclasses.is_dataclass(type(config))
    assert isinstance(config, model_config_class(name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sequences = ("x",)
    assert config_from_dict(type(config), config_to_dict(config)) == config
    assert build_model(name, config_to_dict(config)) is not None


@pytest.mark.parametrize("name", model_names())
def test_output_is_finite_logits_of_input_size(name: str) -> None:
    model = _tiny(name)
    logits = model(_input(name))
    assert logits.shape == (2, 1, SIZE, SIZE)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", model_names())
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = _tiny(name)
    logits = model(_input(name))
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    (logits * weights).sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", model_names())
def test_state_dict_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    model = _tiny(name).eval()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(123)
    restored = build_model(name, tiny_config(name)).eval()
    restored.load_state_dict(torch.load(path, weights_only=True))
    images = _input(name)
    with torch.no_grad():
        assert torch.equal(model(images), restored(images))


@pytest.mark.parametrize("name", model_names())
def test_wrong_channel_count_is_a_clear_value_error(name: str) -> None:
    model = _tiny(name)
    images = _input(name)
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
