"""Attention U-Net (Oktay et al., "Attention U-Net: learning where to look for the pancreas", MIDL 2018), in 2D.

A SeqSeg Table 5 baseline ("Att Unet", Dice 73.43 %). A U-Net whose skip connections pass through additive attention
gates (paper section 2, Figure 2): for skip features ``x`` (level ``l``, ``F_l`` channels) and the gating signal ``g``
from the next coarser level of the decoder (``F_g`` channels, half the resolution)::

    q     = psi^T ReLU(W_x^T x + W_g^T g + b_g) + b_psi      (eq. 1; W_x, W_g, psi linear maps, per pixel)
    alpha = sigmoid(q)                                         (attention coefficients in (0, 1))
    x_hat = x * upsample(alpha)                                (the gated skip, alpha broadcast over channels)

``W_x`` is a 2 x 2 convolution with stride 2 (bringing ``x`` to ``g``'s grid, as in the authors' public code; the
paper calls the linear maps 1 x 1 x 1 convolutions and resamples the coefficients), ``W_g`` and ``psi`` are 1 x 1
convolutions, ``F_int = F_l / 2`` intermediate channels (the code's default), and ``alpha`` is brought back to ``x``'s
size by bilinear interpolation (the paper's trilinear resampler in 2D; a convex combination, so it stays in (0, 1)).

Simplifications and choices (ours, for 2D slices and the project's conventions):

* encoder levels = two 3 x 3 ConvNormAct each, 2 x 2 max pooling between levels; decoder levels = bilinear x2
  upsampling of the coarser decoder features, concatenation with the gated skip, two ConvNormAct (the authors'
  ``UnetUp`` block); widths 16-32-64-128-256 (the authors' code: 64 ... 1024 divided by ``feature_scale`` 4);
* group normalisation instead of batch normalisation (the project trains at batch size 1) and ReLU
  (``negative_slope`` 0); no output transform after the gate (the code's ``W`` 1 x 1 conv + BN) and no deep
  supervision: the decoder's convolutions follow the gate directly;
* the gating signal of the deepest gate is the bottleneck's output itself (the code adds a 1 x 1 conv + BN + ReLU,
  which ``W_g`` already subsumes up to the normalisation).

Input height and width must be multiples of ``2 ** (len(widths) - 1)`` (16 by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from npcseg.models.blocks import ConvNormAct, check_input, check_layer_settings, init_prior_bias
from npcseg.models.registry import register_model


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018, eq. 1): ``x_hat = x * upsample(sigmoid(q(x, g)))``.

    Args:
        skip_channels: ``F_l``, channels of the skip features ``x`` ``(B, F_l, H, W)``.
        gate_channels: ``F_g``, channels of the gating signal ``g`` ``(B, F_g, H / 2, W / 2)``.
        intermediate_channels: ``F_int``, channels of the joint space.
    """

    def __init__(self, skip_channels: int, gate_channels: int, intermediate_channels: int) -> None:
        super().__init__()
        self.skip_transform = nn.Conv2d(skip_channels, intermediate_channels, kernel_size=2, stride=2, bias=False)
        self.gate_transform = nn.Conv2d(gate_channels, intermediate_channels, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(intermediate_channels, 1, kernel_size=1, bias=True)

    def coefficients(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Attention coefficients ``alpha`` ``(B, 1, H, W)`` in (0, 1), at the skip's resolution."""
        joint = self.skip_transform(skip)
        gate_term = self.gate_transform(gate)
        if gate_term.shape[-2:] != joint.shape[-2:]:
            raise ValueError(
                f"attention gate: gating signal {tuple(gate.shape[-2:])} does not match the skip's half size "
                f"{tuple(joint.shape[-2:])}"
            )
        alpha = torch.sigmoid(self.psi(F.relu(joint + gate_term)))
        return F.interpolate(alpha, size=skip.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The gated skip ``skip * alpha`` ``(B, F_l, H, W)``."""
        return skip * self.coefficients(skip, gate)


@dataclass(frozen=True)
class AttentionUNetConfig:
    """Settings of the 2D Attention U-Net (module docstring for what is the paper's and what is ours).

    Attributes:
        sequences: input sequences, in channel order (SeqSeg: T1, T1c, T2).
        widths: channels per level, full resolution first; ``len(widths) - 1`` poolings. Multiples of
            ``num_groups``.
        num_groups: group-normalisation groups.
        negative_slope: leaky-ReLU slope (0 = ReLU, the paper's).
        prior_probability: initial tumour probability of every pixel (output bias ``logit(p)``), as in ``deu``;
            ``None`` keeps PyTorch's default initialisation.
    """

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_groups: int = 8
    negative_slope: float = 0.0
    prior_probability: float | None = 0.01

    def __post_init__(self) -> None:
        if len(self.sequences) < 1 or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must be one or more distinct names, got {list(self.sequences)}")
        if len(self.widths) < 2:
            raise ValueError(f"widths must give at least 2 levels, got {list(self.widths)}")
        check_layer_settings(self.widths, self.num_groups, self.negative_slope, self.prior_probability)

    @property
    def size_divisor(self) -> int:
        """Input height and width must be multiples of this (``2 ** number of poolings``)."""
        return 2 ** (len(self.widths) - 1)


@register_model("attention-unet", AttentionUNetConfig, tiny_overrides={"widths": [8, 8, 16, 16]})
class AttentionUNet(nn.Module):
    """2D Attention U-Net; input ``(B, C, H, W)`` -> logits ``(B, 1, H, W)``, H and W multiples of 16 by default."""

    def __init__(self, config: AttentionUNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        conv = partial(ConvNormAct, num_groups=config.num_groups, negative_slope=config.negative_slope)
        in_channels = [len(config.sequences), *widths[:-1]]
        self.encoder = nn.ModuleList(
            nn.Sequential(conv(source, width), conv(width, width))
            for source, width in zip(in_channels, widths, strict=True)
        )
        # Decoder level l (from the second deepest up to full resolution): gate on skip l, gated by level l + 1.
        self.gates = nn.ModuleList(
            AttentionGate(widths[level], widths[level + 1], max(widths[level] // 2, 1))
            for level in range(len(widths) - 1)
        )
        self.decoder = nn.ModuleList(
            nn.Sequential(conv(widths[level] + widths[level + 1], widths[level]), conv(widths[level], widths[level]))
            for level in range(len(widths) - 1)
        )
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)
        init_prior_bias(self.head, config.prior_probability)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is ``(B, C, H, W)`` with H and W multiples of the size divisor."""
        check_input(
            images, model_name="attention-unet", sequences=self.config.sequences, size_divisor=self.config.size_divisor
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, C, H, W)`` (channels in ``config.sequences`` order)."""
        self.check_input(images)
        skips = []
        x = images
        for level, block in enumerate(self.encoder):
            if level > 0:
                x = F.max_pool2d(x, kernel_size=2)
            x = block(x)
            skips.append(x)
        for level in reversed(range(len(self.decoder))):
            gated = self.gates[level](skips[level], x)
            upsampled = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.decoder[level](torch.cat([gated, upsampled], dim=1))
        return self.head(x)
