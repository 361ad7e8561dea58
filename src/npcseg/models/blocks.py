"""Building blocks shared by the 2D segmentation networks.

All blocks take and return channel-first tensors ``(B, C, H, W)``. Normalisation is group normalisation (Wu & He,
2018), which the DEU paper prefers to batch normalisation at batch size 1; the activation is leaky ReLU. Convolutions
that are directly followed by a normalisation carry no bias (the normalisation's shift replaces it).

Also the checks and initialisation every network shares: :func:`check_input` (input channels and size divisor) and
:func:`init_prior_bias` (the output bias at ``logit(prior_probability)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn


def check_groups(num_channels: int, num_groups: int, where: str) -> None:
    """Raise ``ValueError`` unless ``num_channels`` splits into ``num_groups`` equal groups.

    Args:
        num_channels: channels of the tensor to be normalised.
        num_groups: number of group-normalisation groups.
        where: name of the layer, for the error message.
    """
    if num_channels <= 0 or num_channels % num_groups != 0:
        raise ValueError(
            f"{where}: {num_channels} channels cannot be split into {num_groups} group-norm groups "
            f"(the number of channels must be a positive multiple of {num_groups})"
        )


def check_input(images: torch.Tensor, *, model_name: str, sequences: Sequence[str], size_divisor: int) -> None:
    """Raise ``ValueError`` unless ``images`` is ``(B, len(sequences), H, W)`` with H and W positive multiples.

    Args:
        images: the network's input batch.
        model_name: how the error message names the network (e.g. ``"DEU"``, ``"U-Net of depth 4"``).
        sequences: the input sequences, in channel order (one channel each).
        size_divisor: H and W must be positive multiples of it (the network's total downsampling factor).
    """
    num_channels = len(sequences)
    if images.ndim != 4 or images.shape[1] != num_channels:
        raise ValueError(
            f"{model_name} expects input (batch, {num_channels}, height, width) with channels "
            f"{list(sequences)}, got shape {tuple(images.shape)}"
        )
    height, width = images.shape[-2:]
    if height == 0 or width == 0 or height % size_divisor or width % size_divisor:
        raise ValueError(
            f"{model_name} needs height and width that are positive multiples of {size_divisor}, got {height} x {width}"
        )


def init_prior_bias(head: nn.Conv2d, prior_probability: float | None) -> None:
    """Start the output bias at ``logit(prior_probability)`` (see ``DEUConfig.prior_probability``); None: keep.

    Args:
        head: the network's final 1 x 1 convolution (with a bias) giving the logit map.
        prior_probability: initial foreground probability ``p`` in (0, 1); the bias becomes ``log(p / (1 - p))``.
    """
    if prior_probability is not None:
        assert head.bias is not None
        nn.init.constant_(head.bias, math.log(prior_probability / (1.0 - prior_probability)))


def check_layer_settings(
    widths: tuple[int, ...], num_groups: int, negative_slope: float, prior_probability: float | None
) -> None:
    """Validate the settings every conv-norm-act network config shares (raise ``ValueError`` naming the field):
    ``num_groups`` >= 1 dividing every width, ``negative_slope`` in [0, 1), ``prior_probability`` in (0, 1)."""
    if num_groups < 1:
        raise ValueError(f"num_groups must be at least 1, got {num_groups}")
    for level, width in enumerate(widths):
        check_groups(width, num_groups, f"widths[{level}]")
    if not 0.0 <= negative_slope < 1.0:
        raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope}")
    if prior_probability is not None and not 0.0 < prior_probability < 1.0:
        raise ValueError(f"prior_probability must be in (0, 1) or null, got {prior_probability}")


class ConvNormAct(nn.Sequential):
    """Convolution -> GroupNorm -> LeakyReLU ("post-activation").

    Args:
        in_channels: input channels.
        out_channels: output channels (a multiple of ``num_groups``).
        kernel_size: square kernel size; padding keeps the size for stride 1 and halves it for stride 2
            when the input size is even.
        stride: 1, or 2 for a downsampling convolution.
        num_groups: group-normalisation groups.
        negative_slope: slope of the leaky ReLU for negative inputs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        num_groups: int = 8,
        negative_slope: float = 0.1,
    ) -> None:
        check_groups(out_channels, num_groups, "ConvNormAct")
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.GroupNorm(num_groups, out_channels),
            nn.LeakyReLU(negative_slope),
        )


class NormActConv(nn.Sequential):
    """GroupNorm -> LeakyReLU -> convolution ("pre-activation", as in DenseNet's dense layers)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        num_groups: int = 8,
        negative_slope: float = 0.1,
    ) -> None:
        check_groups(in_channels, num_groups, "NormActConv")
        super().__init__(
            nn.GroupNorm(num_groups, in_channels),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        )


class EncoderBlock(nn.Module):
    """Encoder block: three 3 x 3 convolutions, each with GroupNorm + LeakyReLU; the third has stride 2.

    The first two convolutions work at the input resolution and give the skip features that the matching decoder
    block concatenates; the third ("the convolutional layer with two strides", paper p. 4) halves the size and
    gives the block's output for the next, coarser level.

    Shapes: input ``(B, in_channels, H, W)`` -> skip ``(B, channels, H, W)``,
    output ``(B, down_channels, H / 2, W / 2)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        down_channels: int,
        *,
        num_groups: int = 8,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        conv = partial(ConvNormAct, num_groups=num_groups, negative_slope=negative_slope)
        self.features = nn.Sequential(conv(in_channels, channels), conv(channels, channels))
        self.down = conv(channels, down_channels, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(skip, downsampled)``."""
        skip = self.features(x)
        return skip, self.down(skip)


class DenseLayer(nn.Module):
    """Dense layer: GN-LReLU-conv1x1 (bottleneck) -> GN-LReLU-conv3x3 giving ``growth_rate`` new channels.

    Args:
        in_channels: channels of everything concatenated so far.
        growth_rate: new channels this layer adds (K in the paper's Figure 1).
        bottleneck_channels: width of the 1 x 1 bottleneck (DenseNet-BC uses 4 K).
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bottleneck_channels: int,
        *,
        num_groups: int = 8,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            NormActConv(
                in_channels,
                bottleneck_channels,
                kernel_size=1,
                num_groups=num_groups,
                negative_slope=negative_slope,
            ),
            NormActConv(
                bottleneck_channels,
                growth_rate,
                kernel_size=3,
                num_groups=num_groups,
                negative_slope=negative_slope,
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """New features ``(B, growth_rate, H, W)`` (the caller concatenates them)."""
        return self.layers(x)


class DenseBlock(nn.Module):
    """Dense block (Huang et al., 2017): each layer sees the concatenation of the input and all earlier outputs.

    Shapes: ``(B, in_channels, H, W)`` -> ``(B, in_channels + num_layers * growth_rate, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        num_layers: int,
        growth_rate: int,
        bottleneck_channels: int,
        num_groups: int = 8,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(
                in_channels + index * growth_rate,
                growth_rate,
                bottleneck_channels,
                num_groups=num_groups,
                negative_slope=negative_slope,
            )
            for index in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for layer in self.layers:
            features = torch.cat([features, layer(features)], dim=1)
        return features


class TransitionBlock(nn.Sequential):
    """Transition: GroupNorm -> 1 x 1 convolution -> 2 x 2 average pooling (halves H and W), as in the paper.

    The paper lists no activation in the transition block, so there is none here.
    """

    def __init__(self, in_channels: int, out_channels: int, *, num_groups: int = 8) -> None:
        check_groups(in_channels, num_groups, "TransitionBlock")
        super().__init__(
            nn.GroupNorm(num_groups, in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=1),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


class DecoderBlock(nn.Module):
    """Decoder block: 3 x 3 transposed convolution (x2 upsampling), concatenation with the skip, two ConvNormAct.

    The transposed convolution has stride 2, padding 1 and output padding 1, so ``H -> 2 H`` exactly.

    Shapes: ``(B, in_channels, H, W)`` and skip ``(B, skip_channels, 2H, 2W)`` -> ``(B, out_channels, 2H, 2W)``.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        num_groups: int = 8,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1
        )
        conv = partial(ConvNormAct, num_groups=num_groups, negative_slope=negative_slope)
        self.convs = nn.Sequential(conv(out_channels + skip_channels, out_channels), conv(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        upsampled = self.upsample(x)
        return self.convs(torch.cat([upsampled, skip], dim=1))
