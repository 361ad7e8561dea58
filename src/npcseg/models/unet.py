"""Plain 2D U-Net (Ronneberger et al., MICCAI 2015) with optional level attention: SeqSeg's Table 3 baselines.

Registered names (each fixes ``attention``; the rest of the config is shared):

=================  ===============  ===========================================================
name               ``attention``    SeqSeg Table 3 row
=================  ===============  ===========================================================
``unet``           ``"none"``       U-Net
``unet-se``        ``"se"``         U-Net + SE
``unet-cram``      ``"cram"``       U-Net + cRAM
``unet-rram``      ``"rram"``       U-Net + rRAM
``unet-cram-rram`` ``"cram+rram"``  U-Net + cRAM + rRAM
=================  ===============  ===========================================================

Architecture. Encoder level ``l = 0 ... depth`` has ``base_width * 2**l`` channels: level 0 is two 3 x 3
conv-norm-ReLU on the input, each further level 2 x 2 max pooling and two more; level ``depth`` is the bottom.
Decoder: 2 x 2 transposed convolution (stride 2, "up-conv"), concatenation with the encoder level, two 3 x 3
conv-norm-ReLU; a 1 x 1 convolution gives the logit. Height and width must be multiples of ``2**depth``.

Where the attention goes (the paper only says the RAMs "were incorporated into a one-scale U-Net"; our choice): on
the encoder's level maps ``[E_0 ... E_depth]`` (the skips and the bottom) once the encoder has run, before the
decoder uses them -- the same place RANet applies cRAM. ``"cram+rram"`` applies cRAM (deep to shallow) and then
rRAM (shallow to deep) to cRAM's output. The modules are the shared classes of :mod:`npcseg.models.attention`.

Normalisation (paper-silent for its U-Net): batch norm by default, like RANet's ResNet; ``norm="group"`` (group
norm, ``num_groups`` groups) is the safer choice at batch size 1, because batch norm then normalises with one slice's
statistics in training but with running averages in ``eval()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from npcseg.models.attention import ChannelRecurrentAttention, RegionRecurrentAttention, SqueezeExcitation
from npcseg.models.blocks import check_groups, check_input, init_prior_bias
from npcseg.models.registry import register_model

Norm = Literal["batch", "group"]
Attention = Literal["none", "se", "cram", "rram", "cram+rram"]


def norm_layer(kind: Norm, channels: int, num_groups: int) -> nn.Module:
    """``BatchNorm2d(channels)`` or ``GroupNorm(num_groups, channels)``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    check_groups(channels, num_groups, "norm_layer")
    return nn.GroupNorm(num_groups, channels)


class DoubleConv(nn.Sequential):
    """Two (3 x 3 convolution -> normalisation -> ReLU); ``(B, in, H, W) -> (B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: Norm = "batch", num_groups: int = 8) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            norm_layer(norm, out_channels, num_groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            norm_layer(norm, out_channels, num_groups),
            nn.ReLU(inplace=True),
        )


@dataclass(frozen=True)
class UNetConfig:
    """Settings of the U-Net family (paper-silent values are our choices).

    Attributes:
        sequences: input sequences, in channel order (SeqSeg: T1, T1c, T2).
        base_width: channels of level 0; level ``l`` has ``base_width * 2**l`` (the original U-Net: 64).
        depth: number of 2 x 2 poolings (4 in the original U-Net); input sizes must be multiples of ``2**depth``.
        attention: attention on the encoder levels, fixed by the registered name (see the module docstring).
        norm: ``"batch"`` or ``"group"`` normalisation after every 3 x 3 convolution.
        num_groups: group-norm groups (``norm="group"`` only; every width must be a multiple of it).
        se_reduction: squeeze-and-excitation reduction ratio (``attention="se"``).
        channel_hidden_size: cRAM vector length and LSTM hidden size.
        region_size: rRAM grid side S (the paper asks S < the smallest level size).
        region_hidden_size: rRAM LSTM hidden size.
        region_channels: maps rRAM's 1 x 1 convolution reduces each pooled level to before flattening.
        prior_probability: initial tumour probability (output bias ``logit(p)``), as ``DEUConfig``; None: default.
    """

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    base_width: int = 32
    depth: int = 4
    attention: Attention = "none"
    norm: Norm = "batch"
    num_groups: int = 8
    se_reduction: int = 16
    channel_hidden_size: int = 128
    region_size: int = 8
    region_hidden_size: int = 128
    region_channels: int = 2
    prior_probability: float | None = 0.01

    def __post_init__(self) -> None:
        if len(self.sequences) < 1 or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must be one or more distinct names, got {list(self.sequences)}")
        if self.base_width < 1 or not 1 <= self.depth <= 7:
            raise ValueError(f"base_width must be positive and depth in 1-7, got {self.base_width} and {self.depth}")
        if self.attention not in ("none", "se", "cram", "rram", "cram+rram"):
            raise ValueError(f"attention must be none, se, cram, rram or cram+rram, got {self.attention!r}")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {self.norm!r}")
        if self.norm == "group":
            check_groups(self.base_width, self.num_groups, "base_width")
        sizes = (self.se_reduction, self.channel_hidden_size, self.region_size, self.region_hidden_size)
        if min(*sizes, self.region_channels, self.num_groups) < 1:
            raise ValueError("se_reduction, channel/region sizes, region_channels and num_groups must be positive")
        if self.prior_probability is not None and not 0.0 < self.prior_probability < 1.0:
            raise ValueError(f"prior_probability must be in (0, 1) or null, got {self.prior_probability}")
        expected = _PRESET_ATTENTION.get(type(self))
        if expected is not None and self.attention != expected:
            raise ValueError(
                f"{type(self).__name__} is the {expected!r} preset; use model 'unet' with attention "
                f"{self.attention!r} for another attention"
            )


@dataclass(frozen=True)
class UNetSEConfig(UNetConfig):
    """``unet-se``: U-Net + squeeze-and-excitation on every encoder level."""

    attention: Attention = "se"


@dataclass(frozen=True)
class UNetCRAMConfig(UNetConfig):
    """``unet-cram``: U-Net + cRAM over the encoder levels."""

    attention: Attention = "cram"


@dataclass(frozen=True)
class UNetRRAMConfig(UNetConfig):
    """``unet-rram``: U-Net + rRAM over the encoder levels."""

    attention: Attention = "rram"


@dataclass(frozen=True)
class UNetCRAMRRAMConfig(UNetConfig):
    """``unet-cram-rram``: U-Net + cRAM then rRAM over the encoder levels."""

    attention: Attention = "cram+rram"


_PRESET_ATTENTION: dict[type, str] = {
    UNetSEConfig: "se",
    UNetCRAMConfig: "cram",
    UNetRRAMConfig: "rram",
    UNetCRAMRRAMConfig: "cram+rram",
}

_TINY = {
    "base_width": 8,
    "depth": 2,
    "se_reduction": 2,
    "channel_hidden_size": 8,
    "region_size": 4,
    "region_hidden_size": 8,
    "region_channels": 1,
}


def level_attention(config: UNetConfig, channels: tuple[int, ...]) -> nn.ModuleList:
    """The attention modules of ``config.attention`` for levels of ``channels``, applied in list order."""
    modules: list[nn.Module] = []
    if config.attention == "se":
        modules.append(SqueezeExcitation(channels, reduction=config.se_reduction))
    if config.attention in ("cram", "cram+rram"):
        modules.append(ChannelRecurrentAttention(channels, hidden_size=config.channel_hidden_size))
    if config.attention in ("rram", "cram+rram"):
        modules.append(
            RegionRecurrentAttention(
                channels,
                region_size=config.region_size,
                hidden_size=config.region_hidden_size,
                region_channels=config.region_channels,
            )
        )
    return nn.ModuleList(modules)


@register_model("unet-cram-rram", UNetCRAMRRAMConfig, tiny_overrides=_TINY)
@register_model("unet-rram", UNetRRAMConfig, tiny_overrides=_TINY)
@register_model("unet-cram", UNetCRAMConfig, tiny_overrides=_TINY)
@register_model("unet-se", UNetSEConfig, tiny_overrides=_TINY)
@register_model("unet", UNetConfig, tiny_overrides=_TINY)
class UNet(nn.Module):
    """U-Net with optional level attention; input ``(B, C, H, W)`` -> logits ``(B, 1, H, W)``.

    Attributes:
        config: the settings it was built from.
        widths: channels of encoder levels ``0 ... depth``.
        size_divisor: ``2**depth``; H and W must be multiples of it.
        attention: the attention modules, applied in order to the encoder levels (empty for ``"none"``).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        self.size_divisor = 2**config.depth
        self.widths = tuple(config.base_width * 2**level for level in range(config.depth + 1))
        conv = partial(DoubleConv, norm=config.norm, num_groups=config.num_groups)
        in_channels = len(config.sequences)
        self.encoders = nn.ModuleList(
            conv(in_channels if level == 0 else self.widths[level - 1], width)
            for level, width in enumerate(self.widths)
        )
        self.pool = nn.MaxPool2d(2)
        self.attention = level_attention(config, self.widths)
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose2d(self.widths[level + 1], self.widths[level], 2, stride=2) for level in range(config.depth)
        )
        self.decoders = nn.ModuleList(conv(2 * self.widths[level], self.widths[level]) for level in range(config.depth))
        self.head = nn.Conv2d(self.widths[0], 1, 1)
        init_prior_bias(self.head, config.prior_probability)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is ``(B, len(sequences), H, W)``, H and W multiples of 2**depth.

        Also when training with batch norm on a single value per channel at the bottom (batch 1, bottom 1 x 1).
        """
        check_input(
            images,
            model_name=f"U-Net of depth {self.config.depth}",
            sequences=self.config.sequences,
            size_divisor=self.size_divisor,
        )
        height, width = images.shape[-2:]
        bottom = (height // self.size_divisor) * (width // self.size_divisor)
        if self.training and self.config.norm == "batch" and images.shape[0] * bottom == 1:
            raise ValueError(
                f"U-Net in training mode: batch norm needs more than one value per channel at the bottom level "
                f"(H/{self.size_divisor} x W/{self.size_divisor}), got batch 1 of {height} x {width}; use a larger "
                "slice or batch, norm='group', or eval()"
            )

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Encoder level maps ``[E_0 (H) ... E_depth (H / 2**depth)]`` after the attention."""
        self.check_input(images)
        levels = [self.encoders[0](images)]
        for encoder in self.encoders[1:]:
            levels.append(encoder(self.pool(levels[-1])))
        for module in self.attention:
            levels = module(levels)
        return levels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, C, H, W)`` (channels in ``config.sequences`` order)."""
        levels = self.encode(images)
        x = levels[-1]
        for level in reversed(range(self.config.depth)):
            x = self.decoders[level](torch.cat([self.upsamples[level](x), levels[level]], dim=1))
        return self.head(x)
