"""Parameter and FLOP counting against closed forms."""

from __future__ import annotations

from torch import nn

from npcseg.models import build_model, count_flops, count_parameters


def test_conv_flops_are_twice_the_multiply_adds() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    assert count_flops(conv, (2, 3, 16, 16)) == 2 * (2 * 8 * 16 * 16) * 3 * 9
    strided = nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=1, groups=2)
    assert count_flops(strided, (1, 4, 16, 16)) == 2 * (6 * 8 * 8) * 2 * 9


def test_transposed_conv_and_linear_flops() -> None:
    transposed = nn.ConvTranspose2d(4, 6, kernel_size=3, stride=2, padding=1, output_padding=1)
    assert count_flops(transposed, (1, 4, 8, 8)) == 2 * (4 * 8 * 8) * 6 * 9
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_flops(linear, (3, 12)) == 2 * 3 * 5 * 12


def test_parameter_count_and_hooks_are_removed() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3)
    assert count_parameters(conv) == 3 * 8 * 9 + 8
    assert conv.bias is not None
    conv.bias.requires_grad_(False)
    assert count_parameters(conv) == 3 * 8 * 9
    assert count_parameters(conv, trainable_only=False) == 3 * 8 * 9 + 8
    model = build_model("deu-single", {"widths": [8, 8, 16, 16, 16, 16], "growth_rate": 8})
    first = count_flops(model, (1, 1, 64, 64))
    assert count_flops(model, (2, 1, 64, 64)) == 2 * first
    assert all(not module._forward_hooks for module in model.modules())
