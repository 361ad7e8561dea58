"""Attention U-Net: the additive attention gate against a hand computation, structure, size checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from npcseg.models import build_model, count_parameters, tiny_config
from npcseg.models.attention_unet import AttentionGate, AttentionUNet, AttentionUNetConfig


def _sigmoid(value: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-value))


def _manual_gate(gate: AttentionGate, skip: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Oktay et al. eq. (1) written out with explicit sums, for skip (F, 4, 4) and gating signal (G, 2, 2)."""
    w_x = gate.skip_transform.weight.detach().double().numpy()  # (F_int, F, 2, 2), stride 2, no bias
    w_g = gate.gate_transform.weight.detach().double().numpy()[:, :, 0, 0]  # (F_int, G)
    b_g = gate.gate_transform.bias.detach().double().numpy()  # type: ignore[union-attr]
    w_psi = gate.psi.weight.detach().double().numpy()[0, :, 0, 0]  # (F_int,)
    b_psi = float(gate.psi.bias.detach()[0])  # type: ignore[index]
    num_intermediate = w_x.shape[0]
    alpha = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            joint = np.zeros(num_intermediate)
            for c in range(num_intermediate):
                patch = skip[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                joint[c] = (w_x[c] * patch).sum() + (w_g[c] * signal[:, i, j]).sum() + b_g[c]
            alpha[i, j] = _sigmoid((w_psi * np.maximum(joint, 0.0)).sum() + b_psi)
    # Bilinear x2 (half-pixel centres, edges clamped): output o samples the input at o / 2 - 0.25.
    interpolation = np.array([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    return interpolation @ alpha @ interpolation.T


def test_attention_gate_equals_the_hand_computation() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(skip_channels=4, gate_channels=3, intermediate_channels=2).double()
    generator = torch.Generator().manual_seed(1)
    skip = torch.randn(1, 4, 4, 4, dtype=torch.float64, generator=generator)
    signal = torch.randn(1, 3, 2, 2, dtype=torch.float64, generator=generator)
    alpha = _manual_gate(gate, skip[0].numpy(), signal[0].numpy())
    assert ((alpha > 0) & (alpha < 1)).all()
    coefficients = gate.coefficients(skip, signal)
    assert coefficients.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(coefficients[0, 0].detach().numpy(), alpha, rtol=1e-12)
    output = gate(skip, signal)
    np.testing.assert_allclose(output[0].detach().numpy(), skip[0].numpy() * alpha[None], rtol=1e-12)


@pytest.mark.parametrize(("bias", "expected"), [(30.0, 1.0), (-30.0, 0.0)])
def test_gate_passes_or_blocks_the_skip(bias: float, expected: float) -> None:
    gate = AttentionGate(4, 3, 2)
    with torch.no_grad():
        gate.psi.weight.zero_()
        gate.psi.bias.fill_(bias)  # type: ignore[union-attr]
    skip, signal = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(gate(skip, signal), expected * skip, atol=1e-12, rtol=1e-6)


def test_gates_sit_on_every_skip_with_the_coarser_level_as_signal() -> None:
    model = build_model("attention-unet", {"widths": [8, 16, 16, 32]})
    assert isinstance(model, AttentionUNet)
    assert len(model.gates) == 3
    seen: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for level, gate in enumerate(model.gates):
        gate.register_forward_hook(
            lambda module, inputs, output, level=level: seen.update(
                {level: (tuple(inputs[0].shape), tuple(inputs[1].shape))}
            )
        )
    logits = model(torch.randn(1, 3, 48, 32))
    assert logits.shape == (1, 1, 48, 32)
    assert seen == {
        0: ((1, 8, 48, 32), (1, 16, 24, 16)),
        1: ((1, 16, 24, 16), (1, 16, 12, 8)),
        2: ((1, 16, 12, 8), (1, 32, 6, 4)),
    }


def test_parameter_count_matches_the_layer_list() -> None:
    widths, channels = [8, 8, 16, 16], 3
    encoder = 0
    previous = channels
    for width in widths:  # two 3x3 convs without bias + GroupNorm (2 per channel) each
        encoder += previous * width * 9 + width * width * 9 + 4 * width
        previous = width
    gates = decoder = 0
    for level in range(len(widths) - 1):
        skip, coarse = widths[level], widths[level + 1]
        intermediate = skip // 2
        gates += skip * intermediate * 4 + coarse * intermediate + intermediate + intermediate + 1
        decoder += (skip + coarse) * skip * 9 + skip * skip * 9 + 4 * skip
    head = widths[0] + 1
    model = build_model("attention-unet", tiny_config("attention-unet"))
    assert count_parameters(model) == encoder + gates + decoder + head


def test_bad_sizes_and_configs_are_value_errors() -> None:
    model = build_model("attention-unet", tiny_config("attention-unet"))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="channels"):
        model(torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError, match="group-norm"):
        AttentionUNetConfig(widths=(8, 12))
    with pytest.raises(ValueError, match="at least 2 levels"):
        AttentionUNetConfig(widths=(8,))
    with pytest.raises(ValueError, match="prior_probability"):
        AttentionUNetConfig(prior_probability=1.0)


def test_output_starts_at_the_prior_probability() -> None:
    model = build_model("attention-unet", dataclasses.replace(tiny_config("attention-unet"), prior_probability=0.05))
    assert isinstance(model, AttentionUNet)
    assert model.head.bias is not None
    assert torch.sigmoid(model.head.bias).item() == pytest.approx(0.05)
