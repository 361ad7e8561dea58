"""SE, cRAM and rRAM against hand-written computations, and the order in which the LSTM visits the levels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from npcseg.models.attention import ChannelRecurrentAttention, RegionRecurrentAttention, SqueezeExcitation

CHANNELS = (3, 5, 4)
SIZES = (16, 8, 4)


def _levels(channels: tuple[int, ...] = CHANNELS, batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, count, size, size, generator=generator) for count, size in zip(channels, SIZES, strict=True)
    ]


def _randomise(module: nn.Module, seed: int = 3) -> None:
    """Non-trivial biases everywhere (PyTorch's defaults are small), so the checks see every term."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def _lstm_step(
    cell: nn.LSTMCell, vector: torch.Tensor, hidden: torch.Tensor, memory: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step written out (Hochreiter & Schmidhuber; PyTorch's gate order i, f, g, o)."""
    gates = vector @ cell.weight_ih.T + cell.bias_ih + hidden @ cell.weight_hh.T + cell.bias_hh
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
    memory = torch.sigmoid(forget_gate) * memory + torch.sigmoid(input_gate) * torch.tanh(candidate)
    return torch.sigmoid(output_gate) * torch.tanh(memory), memory


def _conv1x1(conv: nn.Module, vector: torch.Tensor) -> torch.Tensor:
    """A 1 x 1 convolution on (B, C) vectors, as a matrix product."""
    assert isinstance(conv, nn.Conv2d)
    return vector @ conv.weight[:, :, 0, 0].T + conv.bias


def test_squeeze_excitation_matches_the_formula() -> None:
    module = SqueezeExcitation(CHANNELS, reduction=2, min_hidden=2)
    _randomise(module)
    levels = _levels()
    outputs, weights = module(levels), module.weights(levels)
    for index, (feature, excite) in enumerate(zip(levels, module.excite, strict=True)):
        pooled = feature.mean(dim=(2, 3))
        expected = torch.sigmoid(_conv1x1(excite[2], torch.relu(_conv1x1(excite[0], pooled))))
        assert weights[index].shape == (2, CHANNELS[index], 1, 1)
        torch.testing.assert_close(weights[index][:, :, 0, 0], expected)
        assert ((weights[index] > 0) & (weights[index] < 1)).all()
        torch.testing.assert_close(outputs[index], feature * expected[:, :, None, None])


def test_cram_matches_an_lstm_written_out_from_the_deepest_level() -> None:
    """A_i = sigmoid(conv(LSTM(conv(GAP(X_i)); h))) with the LSTM visiting X_n ... X_1; U_i = A_i * X_i (eq. 2)."""
    module = ChannelRecurrentAttention(CHANNELS, hidden_size=6)
    _randomise(module)
    levels = _levels()
    outputs, weights = module(levels), module.weights(levels)
    hidden, memory = torch.zeros(2, 6), torch.zeros(2, 6)
    for index in reversed(range(len(levels))):
        vector = _conv1x1(module.squeeze[index], levels[index].mean(dim=(2, 3)))
        hidden, memory = _lstm_step(module.lstm, vector, hidden, memory)
        expected = torch.sigmoid(_conv1x1(module.excite[index], hidden))
        torch.testing.assert_close(weights[index][:, :, 0, 0], expected)
        assert ((weights[index] > 0) & (weights[index] < 1)).all()
        torch.testing.assert_close(outputs[index], levels[index] * expected[:, :, None, None])


def test_rram_matches_a_written_out_computation_from_the_shallowest_level() -> None:
    """A^r_i = sigmoid(upsample(f(X_i, h_{i-1}))) with f = pool to S x S, conv, LSTM, linear (eq. 3)."""
    size = 4
    module = RegionRecurrentAttention(CHANNELS, region_size=size, hidden_size=7, region_channels=2)
    _randomise(module)
    levels = _levels()
    outputs, weights, logits = module(levels), module.weights(levels), module.region_logits(levels)
    hidden, memory = torch.zeros(2, 7), torch.zeros(2, 7)
    for index, feature in enumerate(levels):  # shallowest first
        batch, channels, height, width = feature.shape
        pooled = feature.view(batch, channels, size, height // size, size, width // size).mean(dim=(3, 5))
        conv = module.squeeze[index]
        reduced = torch.einsum("bcyx,oc->boyx", pooled, conv.weight[:, :, 0, 0]) + conv.bias[None, :, None, None]
        hidden, memory = _lstm_step(module.lstm, reduced.flatten(1), hidden, memory)
        linear = module.excite[index]
        grid = (hidden @ linear.weight.T + linear.bias).view(batch, 1, size, size)
        torch.testing.assert_close(logits[index], grid)
        upsampled = nn.functional.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
        torch.testing.assert_close(weights[index], torch.sigmoid(upsampled))
        assert weights[index].shape == (batch, 1, height, width)
        torch.testing.assert_close(outputs[index], feature * torch.sigmoid(upsampled))


def test_rram_map_is_upsampled_from_the_s_by_s_grid() -> None:
    """With S = 1 the map is constant over the image; with S = 2 it varies only between the 2 x 2 grid cells."""
    levels = _levels()
    flat = RegionRecurrentAttention(CHANNELS, region_size=1, hidden_size=4)
    for weight in flat.weights(levels):
        assert torch.allclose(weight, weight[:, :, :1, :1].expand_as(weight))
    coarse = RegionRecurrentAttention(CHANNELS, region_size=2, hidden_size=4)
    weight = coarse.weights(levels)[0]  # 16 x 16 from a 2 x 2 grid: bilinear, so constant in each 4 x 4 corner
    corner = weight[:, :, :4, :4]
    assert torch.allclose(corner, corner[:, :, :1, :1].expand_as(corner))
    assert not torch.allclose(weight[:, :, :4, :4], weight[:, :, -4:, -4:])


@pytest.mark.parametrize(
    ("factory", "first"),
    [
        (lambda: ChannelRecurrentAttention(CHANNELS, hidden_size=6), -1),
        (lambda: RegionRecurrentAttention(CHANNELS, region_size=2, hidden_size=6), 0),
        (lambda: ChannelRecurrentAttention(CHANNELS, hidden_size=6, order="shallow_to_deep"), 0),
    ],
)
def test_the_lstm_carries_context_only_in_its_visiting_order(factory: object, first: int) -> None:
    """The level visited first is attended from itself alone; the one visited last sees every level."""
    module = factory()  # type: ignore[operator]
    levels = _levels()
    last = len(levels) - 1 if first == 0 else 0
    baseline = module.weights(levels)
    changed = list(levels)
    changed[last] = changed[last] + torch.randn_like(changed[last])  # perturb the level visited last
    after = module.weights(changed)
    assert torch.equal(after[first], baseline[first])  # the first level cannot see later levels
    changed = list(levels)
    changed[first] = changed[first] * 2 + 1  # perturb the level visited first
    after = module.weights(changed)
    assert not torch.allclose(after[last], baseline[last])  # ... but the last level sees it through the LSTM


def _identical_levels(module: nn.Module) -> None:
    """Give every level the same input and output projections, so only the LSTM's order tells levels apart."""
    for modules in (getattr(module, "squeeze", None), getattr(module, "excite", None)):
        if modules is not None:
            for other in modules[1:]:
                other.load_state_dict(modules[0].state_dict())


@pytest.mark.parametrize(
    "factory",
    [
        lambda: ChannelRecurrentAttention((4, 4, 4), hidden_size=6),
        lambda: RegionRecurrentAttention((4, 4, 4), region_size=2, hidden_size=6),
    ],
)
def test_reversing_the_level_list_changes_the_recurrent_result(factory: object) -> None:
    module = factory()  # type: ignore[operator]
    _identical_levels(module)
    levels = _levels((4, 4, 4))
    forward = module(levels)
    backward = module(levels[::-1])[::-1]
    assert any(not torch.allclose(one, two) for one, two in zip(forward, backward, strict=True))
    # control: squeeze-and-excitation has no recurrence, so with identical levels the order does not matter
    se = SqueezeExcitation((4, 4, 4))
    for other in se.excite[1:]:
        other.load_state_dict(se.excite[0].state_dict())
    for one, two in zip(se(levels), se(levels[::-1])[::-1], strict=True):
        torch.testing.assert_close(one, two)


@pytest.mark.parametrize(
    "module",
    [SqueezeExcitation(CHANNELS), ChannelRecurrentAttention(CHANNELS), RegionRecurrentAttention(CHANNELS)],
    ids=["se", "cram", "rram"],
)
def test_wrong_levels_are_value_errors(module: nn.Module) -> None:
    levels = _levels()
    with pytest.raises(ValueError, match="3 feature levels"):
        module(levels[:2])
    with pytest.raises(ValueError, match="level 1"):
        module([levels[0], levels[2], levels[2]])


def test_bad_sizes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="channels"):
        ChannelRecurrentAttention(())
    with pytest.raises(ValueError, match="hidden_size"):
        ChannelRecurrentAttention(CHANNELS, hidden_size=0)
    with pytest.raises(ValueError, match="region_size"):
        RegionRecurrentAttention(CHANNELS, region_size=0)


def test_every_parameter_gets_a_gradient() -> None:
    """On non-negative features, as after a ReLU (on zero-mean noise a narrow SE bottleneck can start dead)."""
    levels = [level.abs().requires_grad_() for level in _levels()]
    modules = (SqueezeExcitation(CHANNELS), ChannelRecurrentAttention(CHANNELS), RegionRecurrentAttention(CHANNELS))
    for module in modules:
        sum((output * torch.randn_like(output)).sum() for output in module(levels)).backward()
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
