"""DDNN, deep deconvolutional neural network (Men et al., Front. Oncol. 2017, 7:315), in 2D.

A SeqSeg Table 5 baseline ("DDNN", Dice 70.98 %). Men et al. segment nasopharyngeal target volumes on planning CT
with an end-to-end encoder-decoder: "the encoder network was used to extract the visual features of a medical image
and the decoder network was used to recover the original resolution by deploying deconvolution"; the encoder is
VGG-16's convolutional part. Neither SeqSeg nor the project's method summary gives more, and the original's full
text was not available to us when this was written, so the following is our reading, stated as such:

* **Encoder**: VGG-16's 13 convolutional layers in five blocks of 2, 2, 3, 3, 3 convolutions (3 x 3) at widths
  64, 128, 256, 512, 512, each block followed by 2 x 2 max pooling (five poolings: input sizes must be multiples of
  32).
* **Decoder**, the encoder mirrored: per level, from the deepest, a 2 x 2 transposed convolution with stride 2
  ("deconvolution", x2 upsampling) to that level's width, then as many 3 x 3 convolutions as the matching encoder
  block (3, 3, 3, 2, 2); a final 1 x 1 convolution gives one logit map.
* **No skip connections**: resolution is recovered by the learned deconvolutions alone (what distinguishes the
  deconvolution-network family, DeconvNet / DDNN, from U-Net).

Simplifications: VGG-16's fully connected layers (fc6, fc7; about 120 M parameters as convolutions) are left out;
no ImageNet pre-training (the input has 3 MR sequences, not RGB); group normalisation after every 3 x 3 convolution
(training at batch size 1) and ReLU (``negative_slope`` 0). With the default VGG-16 widths the network has 33.8 M
parameters and costs 216 GFLOPs per 384 x 384 slice (our FLOP counter); ``widths`` scales it down.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from npcseg.models.blocks import ConvNormAct, check_input, check_layer_settings, init_prior_bias
from npcseg.models.registry import register_model


@dataclass(frozen=True)
class DDNNConfig:
    """Settings of DDNN (module docstring for what is Men et al.'s and what is ours).

    Attributes:
        sequences: input sequences, in channel order (SeqSeg: T1, T1c, T2).
        widths: channels of the encoder blocks, full resolution first (VGG-16: 64, 128, 256, 512, 512); one
            pooling per block. Multiples of ``num_groups``.
        convs_per_block: 3 x 3 convolutions per encoder block and, mirrored, per decoder level (VGG-16:
            2, 2, 3, 3, 3); as many as ``widths``.
        num_groups: group-normalisation groups.
        negative_slope: leaky-ReLU slope (0 = ReLU, VGG's).
        prior_probability: initial tumour probability of every pixel (output bias ``logit(p)``), as in ``deu``;
            ``None`` keeps PyTorch's default initialisation.
    """

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    widths: tuple[int, ...] = (64, 128, 256, 512, 512)
    convs_per_block: tuple[int, ...] = (2, 2, 3, 3, 3)
    num_groups: int = 8
    negative_slope: float = 0.0
    prior_probability: float | None = 0.01

    def __post_init__(self) -> None:
        if len(self.sequences) < 1 or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must be one or more distinct names, got {list(self.sequences)}")
        if not self.widths or len(self.convs_per_block) != len(self.widths):
            raise ValueError(
                f"widths and convs_per_block must be non-empty and equally long, "
                f"got {list(self.widths)} and {list(self.convs_per_block)}"
            )
        if min(self.convs_per_block) < 1:
            raise ValueError(f"every block needs at least one convolution, got {list(self.convs_per_block)}")
        check_layer_settings(self.widths, self.num_groups, self.negative_slope, self.prior_probability)

    @property
    def size_divisor(self) -> int:
        """Input height and width must be multiples of this (``2 ** number of poolings``)."""
        return 2 ** len(self.widths)


_TINY = {"widths": [8, 8, 16], "convs_per_block": [1, 1, 2]}


@register_model("ddnn", DDNNConfig, tiny_overrides=_TINY)
class DDNN(nn.Module):
    """VGG-16-like encoder + mirrored deconvolution decoder; ``(B, C, H, W)`` -> logits ``(B, 1, H, W)``."""

    def __init__(self, config: DDNNConfig) -> None:
        super().__init__()
        self.config = config
        conv = partial(ConvNormAct, num_groups=config.num_groups, negative_slope=config.negative_slope)
        self.encoder = nn.ModuleList()
        channels = len(config.sequences)
        for width, num_convs in zip(config.widths, config.convs_per_block, strict=True):
            layers = [conv(channels if index == 0 else width, width) for index in range(num_convs)]
            self.encoder.append(nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2)))
            channels = width
        self.decoder = nn.ModuleList()
        for width, num_convs in zip(reversed(config.widths), reversed(config.convs_per_block), strict=True):
            upsample = nn.ConvTranspose2d(channels, width, kernel_size=2, stride=2)
            self.decoder.append(nn.Sequential(upsample, *(conv(width, width) for _ in range(num_convs))))
            channels = width
        self.head = nn.Conv2d(channels, 1, kernel_size=1)
        init_prior_bias(self.head, config.prior_probability)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is ``(B, C, H, W)`` with H and W multiples of the size divisor."""
        check_input(images, model_name="ddnn", sequences=self.config.sequences, size_divisor=self.config.size_divisor)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, C, H, W)`` (channels in ``config.sequences`` order)."""
        self.check_input(images)
        x = images
        for block in self.encoder:
            x = block(x)
        for level in self.decoder:
            x = level(x)
        return self.head(x)
