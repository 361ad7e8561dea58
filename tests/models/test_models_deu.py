"""DEU-specific structure: paths per sequence, level sizes, config validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from npcseg.models import build_model, count_parameters, tiny_config
from npcseg.models.deu import DEU, DEUConfig, DEUSingleConfig
from npcseg.models.registry import register_model

TINY = {"widths": [8, 8, 16, 16, 16, 16], "growth_rate": 8, "num_dense_layers": 2, "bottleneck_factor": 2}


@pytest.mark.parametrize("sequences", [["t2"], ["t1", "t2"], ["t1", "t1c", "t2"]])
def test_number_of_paths_follows_the_sequences(sequences: list[str]) -> None:
    model = build_model("deu", {**TINY, "sequences": sequences})
    assert isinstance(model, DEU)
    assert model.num_paths == len(model.paths) == len(sequences)
    logits = model(torch.randn(1, len(sequences), 64, 64))
    assert logits.shape == (1, 1, 64, 64)


def test_single_variant_has_one_path_and_rejects_two_sequences() -> None:
    model = build_model("deu-single", tiny_config("deu-single"))
    assert isinstance(model, DEU)
    assert model.num_paths == 1
    with pytest.raises(ValueError, match="exactly one sequence"):
        DEUSingleConfig(sequences=("t1", "t2"))


def test_extra_path_adds_exactly_one_encoder_block_and_wider_skips() -> None:
    one = build_model("deu", {**TINY, "sequences": ["t2"]})
    two = build_model("deu", {**TINY, "sequences": ["t1", "t2"]})
    assert isinstance(two, DEU)
    path_parameters = count_parameters(two.paths[1])
    assert count_parameters(two) > count_parameters(one) + path_parameters - 1


def test_level_sizes_match_the_docstring_table() -> None:
    model = build_model("deu", TINY)
    assert isinstance(model, DEU)
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, inputs: object, output: object) -> None:
            tensor = output[0] if isinstance(output, tuple) else output
            shapes[name] = tuple(tensor.shape)  # type: ignore[union-attr]

        return hook

    for name in ["dense", "transition", "encoder2", "encoder3", "encoder4", "decoder1", "decoder5"]:
        getattr(model, name).register_forward_hook(record(name))
    bottom: list[tuple[int, ...]] = []
    model.encoder4.down.register_forward_hook(lambda module, inputs, output: bottom.append(tuple(output.shape)))
    model(torch.randn(1, 2, 96, 64))
    # widths 8, 8, 16, 16, 16, 16; P = 2; dense: 2 * 8 + 2 * 8 = 32 channels
    assert shapes["dense"] == (1, 32, 48, 32)  # level 1: H / 2
    assert shapes["transition"] == (1, 16, 24, 16)  # level 2 input: H / 4
    assert shapes["encoder2"] == (1, 16, 24, 16)  # level 2 skip
    assert shapes["encoder3"] == (1, 16, 12, 8)  # level 3 skip
    assert shapes["encoder4"] == (1, 16, 6, 4)  # level 4 skip
    assert bottom == [(1, 16, 3, 2)]  # level 5 (bottom): H / 32
    assert shapes["decoder1"] == (1, 16, 6, 4)
    assert shapes["decoder5"] == (1, 8, 96, 64)


@pytest.mark.parametrize("shape", [(1, 2, 48, 64), (1, 2, 64, 40), (2, 64, 64)])
def test_bad_input_sizes_are_value_errors(shape: tuple[int, ...]) -> None:
    model = build_model("deu", TINY)
    with pytest.raises(ValueError):
        model(torch.randn(shape))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"widths": (8, 16, 32, 64, 128)}, "6 values"),
        ({"widths": (8, 16, 32, 64, 128, 12)}, "widths\\[5\\]"),
        ({"growth_rate": 12}, "growth_rate"),
        ({"num_dense_layers": 0}, "num_dense_layers"),
        ({"sequences": ()}, "sequences"),
        ({"sequences": ("t1", "t1")}, "sequences"),
        ({"negative_slope": 1.5}, "negative_slope"),
        ({"prior_probability": 1.0}, "prior_probability"),
    ],
)
def test_invalid_configs_are_value_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DEUConfig(**overrides)  # type: ignore[arg-type]


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("deu", DEUConfig)(DEU)


def test_default_config_builds_the_documented_widths() -> None:
    config = DEUConfig()
    model = DEU(config)
    assert model.head.in_channels == config.widths[0]
    assert model.dense.out_channels == 2 * config.widths[1] + config.num_dense_layers * config.growth_rate


def test_initial_output_is_the_prior_tumour_probability() -> None:
    """The head's bias starts at logit(prior): an input of zeros gives sigmoid(logits) == prior everywhere."""
    model = build_model("deu", {**TINY, "prior_probability": 0.02}).eval()
    with torch.no_grad():
        probabilities = torch.sigmoid(model(torch.zeros(1, 2, 64, 64)))
    weight_free = torch.sigmoid(model.head.bias).item()
    assert weight_free == pytest.approx(0.02, rel=1e-6)
    # with zero input the features are constant, so the probability map is close to the prior
    assert probabilities.mean().item() == pytest.approx(0.02, abs=0.015)
    default_bias = build_model("deu", {**TINY, "prior_probability": None}).head.bias.item()
    assert abs(default_bias) < 1.0
