"""DEU: dense connectivity embedding U-Net on multi-sequence MRI (Ye et al., Front. Oncol. 2020, Figure 1).

Mapping to the paper (section "Network architecture" and Figure 1):

* **Independent encoder paths** ("the T1W and T2W images were inputted into the network by two independent
  paths"): one :class:`~npcseg.models.blocks.EncoderBlock` per input sequence, ``E1[s]``. An encoder block is three
  3 x 3 convolutions with group normalisation (8 groups) and leaky ReLU (slope 0.1); the third has stride 2 ("the
  convolutional layer with two strides is designed for downsampling"). The paper's text counts only two GN and two
  LReLU layers per block; we normalise and activate after all three, as the project's method summary specifies.
* **Dense connectivity block**: the stride-2 outputs of all ``E1[s]`` are concatenated channel-wise and enter a
  dense block (layers GN-LReLU-conv1x1-GN-LReLU-conv3x3, growth rate K, each output concatenated to all earlier
  ones) and a transition block (GN, conv 1 x 1, 2 x 2 average pooling).
* **Further encoder blocks** ``E2``, ``E3`` ("another two encoder blocks ... to acquire high-level features").
* **Decoder**: five decoder blocks ``D1`` ... ``D5``, each a 3 x 3 transposed convolution (x2 upsampling),
  concatenation with the matching encoder features, and two 3 x 3 convolutions with GN + LReLU; then a 1 x 1
  convolution to one channel. The network returns that logit map; the paper's sigmoid lives in the loss and in
  inference.
* **Single-sequence variant** (``deu-single``): one path; ``E1``'s output goes straight into the dense block.

Resolution bookkeeping (our choice; the paper gives no sizes or widths). The blocks the paper names halve the
resolution four times (``E1``, transition, ``E2``, ``E3``), but five decoder blocks upsample five times, so a 256 x 256
input would come back as 512 x 512. We add one more encoder block of the same kind, ``E4`` (the "bottleneck"), so
that every decoder block has an encoder level to concatenate with and the output is 256 x 256. Skips are taken
before each block's stride-2 convolution (as in U-Net, before pooling); for the dense level, from the dense
block's output before the transition's pooling. With ``P`` paths, widths ``w0 ... w5``, growth rate ``K`` and
``L`` dense layers, for a 256 x 256 input (any H, W divisible by 32 scale the same way):

=====  =========  ===================================================  =================  =======================
level  size       encoder features (the skip)                          skip channels      decoder block -> width
=====  =========  ===================================================  =================  =======================
0      256 x 256  ``E1[s]`` convs 1-2, all paths concatenated          P w0               D5 -> w0, head -> 1
1      128 x 128  dense block on the concatenated ``E1[s]`` outputs    P w1 + L K         D4 -> w1
                  (P w1 channels)
2      64 x 64    ``E2`` convs 1-2 on the transition output (w2)       w2                 D3 -> w2
3      32 x 32    ``E3`` convs 1-2                                     w3                 D2 -> w3
4      16 x 16    ``E4`` convs 1-2 (bottleneck block, ours)            w4                 D1 -> w4
5      8 x 8      ``E4``'s stride-2 output (bottom, w5 channels)       --                 --
=====  =========  ===================================================  =================  =======================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from npcseg.models.blocks import (
    DecoderBlock,
    DenseBlock,
    EncoderBlock,
    TransitionBlock,
    check_groups,
    check_input,
    init_prior_bias,
)
from npcseg.models.registry import register_model

#: Total downsampling factor of DEU: input height and width must be multiples of it.
SIZE_DIVISOR = 32


@dataclass(frozen=True)
class DEUConfig:
    """Settings of the DEU network (paper-silent values are our choices, see the module docstring).

    Attributes:
        sequences: input sequences, in channel order; one encoder path per sequence (2 = the paper's T1 + T2).
        widths: channels per level ``w0 ... w5`` (level 0 = full resolution; per path at levels 0-1). Every value
            must be a multiple of ``num_groups``. The default (16 ... 256) keeps CPU training practical; a
            paper-like width is ``(32, 64, 128, 256, 512, 512)``.
        growth_rate: channels each dense layer adds (K in Figure 1); a multiple of ``num_groups``.
        num_dense_layers: layers in the dense block (L).
        bottleneck_factor: the dense layers' 1 x 1 bottleneck has ``bottleneck_factor * growth_rate`` channels
            (4, as in DenseNet-BC).
        num_groups: group-normalisation groups (8 in the paper).
        negative_slope: leaky-ReLU slope for negative inputs (0.1 in the paper).
        prior_probability: initial tumour probability of every pixel: the output bias starts at
            ``logit(prior_probability)`` (paper-silent; our choice). With the usual zero bias every pixel starts at
            0.5, and on slices where the tumour covers ~1 % the soft-Dice gradient of each pixel is tiny, so training
            stalls for many epochs with everything predicted as tumour (measured here on the synthetic cohort).
            ``None`` keeps PyTorch's default initialisation.
    """

    sequences: tuple[str, ...] = ("t1", "t2")
    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 256)
    growth_rate: int = 16
    num_dense_layers: int = 4
    bottleneck_factor: int = 4
    num_groups: int = 8
    negative_slope: float = 0.1
    prior_probability: float | None = 0.01

    def __post_init__(self) -> None:
        if len(self.sequences) < 1 or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must be one or more distinct names, got {list(self.sequences)}")
        if len(self.widths) != 6:
            raise ValueError(f"widths must give 6 values (levels 0-5), got {list(self.widths)}")
        if self.num_groups < 1:
            raise ValueError(f"num_groups must be at least 1, got {self.num_groups}")
        for level, width in enumerate(self.widths):
            check_groups(width, self.num_groups, f"widths[{level}]")
        check_groups(self.growth_rate, self.num_groups, "growth_rate")
        if self.num_dense_layers < 1 or self.bottleneck_factor < 1:
            raise ValueError(
                f"num_dense_layers and bottleneck_factor must be at least 1, "
                f"got {self.num_dense_layers} and {self.bottleneck_factor}"
            )
        if not 0.0 <= self.negative_slope < 1.0:
            raise ValueError(f"negative_slope must be in [0, 1), got {self.negative_slope}")
        if self.prior_probability is not None and not 0.0 < self.prior_probability < 1.0:
            raise ValueError(f"prior_probability must be in (0, 1) or null, got {self.prior_probability}")


@dataclass(frozen=True)
class DEUSingleConfig(DEUConfig):
    """DEU with one encoder path (the paper's single-sequence model); ``sequences`` must name one sequence."""

    sequences: tuple[str, ...] = ("t2",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.sequences) != 1:
            raise ValueError(f"deu-single takes exactly one sequence, got {list(self.sequences)}")


_TINY = {"widths": [8, 8, 16, 16, 16, 16], "growth_rate": 8, "num_dense_layers": 2, "bottleneck_factor": 2}


@register_model("deu-single", DEUSingleConfig, tiny_overrides=_TINY)
@register_model("deu", DEUConfig, tiny_overrides=_TINY)
class DEU(nn.Module):
    """Dense connectivity embedding U-Net; input ``(B, P, H, W)`` -> logits ``(B, 1, H, W)``, H and W % 32 == 0.

    Attributes:
        config: the settings it was built from.
        num_paths: number of independent encoder paths (= number of sequences).
    """

    def __init__(self, config: DEUConfig) -> None:
        super().__init__()
        self.config = config
        self.num_paths = len(config.sequences)
        w0, w1, w2, w3, w4, w5 = config.widths
        groups, slope = config.num_groups, config.negative_slope
        encoder = partial(EncoderBlock, num_groups=groups, negative_slope=slope)
        decoder = partial(DecoderBlock, num_groups=groups, negative_slope=slope)
        self.paths = nn.ModuleList(encoder(1, w0, w1) for _ in range(self.num_paths))
        self.dense = DenseBlock(
            self.num_paths * w1,
            num_layers=config.num_dense_layers,
            growth_rate=config.growth_rate,
            bottleneck_channels=config.bottleneck_factor * config.growth_rate,
            num_groups=config.num_groups,
            negative_slope=config.negative_slope,
        )
        self.transition = TransitionBlock(self.dense.out_channels, w2, num_groups=config.num_groups)
        self.encoder2 = encoder(w2, w2, w3)
        self.encoder3 = encoder(w3, w3, w4)
        self.encoder4 = encoder(w4, w4, w5)
        self.decoder1 = decoder(w5, w4, w4)
        self.decoder2 = decoder(w4, w3, w3)
        self.decoder3 = decoder(w3, w2, w2)
        self.decoder4 = decoder(w2, self.dense.out_channels, w1)
        self.decoder5 = decoder(w1, self.num_paths * w0, w0)
        self.head = nn.Conv2d(w0, 1, kernel_size=1)
        init_prior_bias(self.head, config.prior_probability)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is ``(B, num_paths, H, W)`` with H and W multiples of 32."""
        check_input(images, model_name="DEU", sequences=self.config.sequences, size_divisor=SIZE_DIVISOR)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, P, H, W)`` (channels in ``config.sequences`` order)."""
        self.check_input(images)
        first = [path(images[:, index : index + 1]) for index, path in enumerate(self.paths)]
        skip0 = torch.cat([skip for skip, _ in first], dim=1)
        skip1 = self.dense(torch.cat([down for _, down in first], dim=1))
        skip2, down = self.encoder2(self.transition(skip1))
        skip3, down = self.encoder3(down)
        skip4, bottom = self.encoder4(down)
        x = self.decoder1(bottom, skip4)
        x = self.decoder2(x, skip3)
        x = self.decoder3(x, skip2)
        x = self.decoder4(x, skip1)
        x = self.decoder5(x, skip0)
        return self.head(x)
