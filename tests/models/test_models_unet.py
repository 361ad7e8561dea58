"""U-Net family: closed-form parameter count, level sizes, where the shared attention modules act, config checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from npcseg.models import build_model, count_parameters, model_config_class, tiny_config
from npcseg.models.attention import ChannelRecurrentAttention, RegionRecurrentAttention, SqueezeExcitation
from npcseg.models.unet import UNet, UNetConfig

PRESETS = {
    "unet": [],
    "unet-se": [SqueezeExcitation],
    "unet-cram": [ChannelRecurrentAttention],
    "unet-rram": [RegionRecurrentAttention],
    "unet-cram-rram": [ChannelRecurrentAttention, RegionRecurrentAttention],
}


def _unet(name: str = "unet", **overrides: object) -> UNet:
    torch.manual_seed(0)
    config = {**{"base_width": 8, "depth": 2, "region_size": 4}, **overrides}
    model = build_model(name, config)
    assert isinstance(model, UNet)
    return model


def _double_conv(in_channels: int, out_channels: int) -> int:
    """Two bias-free 3 x 3 convolutions, each followed by a batch norm (weight + bias)."""
    return 9 * in_channels * out_channels + 9 * out_channels * out_channels + 4 * out_channels


@pytest.mark.parametrize(("depth", "base", "channels"), [(2, 8, 3), (4, 32, 1)])
def test_plain_unet_parameter_count_has_the_closed_form(depth: int, base: int, channels: int) -> None:
    model = _unet(depth=depth, base_width=base, sequences=["t1", "t1c", "t2"][:channels])
    widths = [base * 2**level for level in range(depth + 1)]
    expected = _double_conv(channels, widths[0])
    expected += sum(_double_conv(widths[level - 1], widths[level]) for level in range(1, depth + 1))
    expected += sum(4 * widths[level + 1] * widths[level] + widths[level] for level in range(depth))  # up-convs
    expected += sum(_double_conv(2 * widths[level], widths[level]) for level in range(depth))
    expected += widths[0] + 1  # 1 x 1 head
    assert count_parameters(model) == expected


@pytest.mark.parametrize(("name", "classes"), PRESETS.items())
def test_each_preset_uses_the_shared_attention_classes(name: str, classes: list[type]) -> None:
    model = build_model(name, tiny_config(name))
    assert isinstance(model, UNet)
    assert [type(module) for module in model.attention] == classes
    for module in model.attention:
        assert module.channels == model.widths
    assert model_config_class(name)().attention == model.config.attention


def test_attention_acts_on_the_encoder_levels_before_the_decoder() -> None:
    """encode() = the attention modules, in order, applied to the plain encoder's level maps."""
    model = _unet("unet-cram-rram").eval()
    images = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        plain = [model.encoders[0](images)]
        for encoder in model.encoders[1:]:
            plain.append(encoder(model.pool(plain[-1])))
        cram, rram = model.attention
        expected = rram(cram(plain))
        for got, want in zip(model.encode(images), expected, strict=True):
            torch.testing.assert_close(got, want)
    assert [tuple(level.shape) for level in expected] == [(2, 8, 32, 48), (2, 16, 16, 24), (2, 32, 8, 12)]


def test_without_attention_the_levels_are_the_plain_encoder() -> None:
    model = _unet().eval()
    images = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(images)[0], model.encoders[0](images))
    assert len(model.attention) == 0


def test_size_divisor_follows_the_depth() -> None:
    model = _unet(depth=2)
    assert model.size_divisor == 4
    assert model(torch.randn(1, 3, 36, 44)).shape == (1, 1, 36, 44)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.randn(1, 3, 34, 44))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 2, 36, 44))
    with pytest.raises(ValueError, match="batch norm needs more than one value"):
        model(torch.randn(1, 3, 4, 4))
    assert model.eval()(torch.randn(1, 3, 4, 4)).shape == (1, 1, 4, 4)


def test_group_norm_option() -> None:
    model = _unet(norm="group", num_groups=4)
    assert any(isinstance(module, torch.nn.GroupNorm) for module in model.modules())
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules())
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attention": "cbam"}, "attention"),
        ({"norm": "layer"}, "norm"),
        ({"norm": "group", "base_width": 12}, "base_width"),
        ({"depth": 0}, "depth"),
        ({"sequences": ()}, "sequences"),
        ({"region_size": 0}, "positive"),
        ({"prior_probability": 0.0}, "prior_probability"),
    ],
)
def test_invalid_configs_are_value_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNetConfig(**overrides)  # type: ignore[arg-type]


def test_presets_refuse_another_attention() -> None:
    with pytest.raises(ValueError, match="'se' preset"):
        build_model("unet-se", {"attention": "cram"})
    assert build_model("unet", dataclasses.replace(tiny_config("unet"), attention="se")).config.attention == "se"


def test_initial_output_is_the_prior_probability() -> None:
    model = _unet(prior_probability=0.05)
    assert torch.sigmoid(model.head.bias).item() == pytest.approx(0.05, rel=1e-6)
