"""FC-DenseNet, "the one hundred layers Tiramisu" (Jégou et al., CVPR Workshops 2017), in 2D.

A SeqSeg Table 5 baseline ("DenseNet", Dice 60.63 %). The paper's building blocks (section 3, Table 1):

* **Layer**: normalisation, ReLU, 3 x 3 convolution giving ``growth_rate`` (k) feature maps, dropout p = 0.2.
* **Dense block** of ``n`` layers: each layer sees the concatenation of the block's input and all earlier layers'
  outputs. On the down path a block outputs its input plus its ``n k`` new maps (and that is the skip); on the up
  path and in the bottleneck a block outputs only its ``n k`` new maps ("to avoid the feature explosion"), except
  the last block, whose output (input plus new maps) goes to the classifier.
* **Transition down**: normalisation, ReLU, 1 x 1 convolution (channels kept), dropout 0.2, 2 x 2 max pooling.
* **Transition up**: 3 x 3 transposed convolution with stride 2 applied to the previous block's new maps only.
* A first 3 x 3 convolution with 48 maps; a final 1 x 1 convolution to the classes (here one logit map: the
  softmax over classes becomes a sigmoid in the loss and in inference).

Variants (Table 2 and section 4; :data:`VARIANTS` gives their overrides):

==================  ======  ==============================  ==================  ==========
variant             growth  layers per block (down, bottom)  parameters (ours)   paper
==================  ======  ==============================  ==================  ==========
FC-DenseNet56       12      4 per block                      1.37 M (1.40 M)     1.5 M
FC-DenseNet67       16      5 per block                      3.46 M (3.50 M)     3.5 M
FC-DenseNet103      16      4, 5, 7, 10, 12; 15              9.32 M (9.42 M)     9.4 M
==================  ======  ==============================  ==================  ==========

Our counts: 3 input channels, 1 output map, biases on every convolution, 2 affine parameters per normalised channel;
in brackets with the 2 running statistics per channel that the paper's batch normalisation also stores (Lasagne
counts them as parameters). The paper's counts are for 11 CamVid classes. The default is FC-DenseNet56, the smallest
of the paper's models: SeqSeg does not say which variant it compared. Costs at 384 x 384 (3 sequences, our FLOP
counter): 52 GFLOPs (56), 122 (67), 117 (103). Our change: group normalisation (``num_groups`` = 4) instead of batch
normalisation, since the project trains at batch size 1; it has the same trainable parameters. Input height and
width must be multiples of ``2 ** len(down_layers)`` (32 by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from npcseg.models.blocks import check_groups, check_input, init_prior_bias
from npcseg.models.registry import register_model


class TiramisuLayer(nn.Sequential):
    """Normalisation -> ReLU -> 3 x 3 convolution (``growth_rate`` maps) -> dropout."""

    def __init__(self, in_channels: int, growth_rate: int, *, dropout: float, num_groups: int) -> None:
        super().__init__(
            nn.GroupNorm(num_groups, in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1),
            nn.Dropout(dropout),
        )


class TiramisuDenseBlock(nn.Module):
    """Dense block of ``num_layers`` layers; returns input + new maps (``keep_input``) or only the new maps.

    Shapes: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` with ``out_channels`` =
    ``in_channels + num_layers * growth_rate`` when ``keep_input`` else ``num_layers * growth_rate``.
    """

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        growth_rate: int,
        *,
        keep_input: bool,
        dropout: float,
        num_groups: int,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TiramisuLayer(in_channels + index * growth_rate, growth_rate, dropout=dropout, num_groups=num_groups)
            for index in range(num_layers)
        )
        self.keep_input = keep_input
        self.out_channels = num_layers * growth_rate + (in_channels if keep_input else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        new_maps = []
        for layer in self.layers:
            output = layer(features)
            new_maps.append(output)
            features = torch.cat([features, output], dim=1)
        return features if self.keep_input else torch.cat(new_maps, dim=1)


class TransitionDown(nn.Sequential):
    """Normalisation -> ReLU -> 1 x 1 convolution (channels kept) -> dropout -> 2 x 2 max pooling."""

    def __init__(self, channels: int, *, dropout: float, num_groups: int) -> None:
        super().__init__(
            nn.GroupNorm(num_groups, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=1),
            nn.Dropout(dropout),
            nn.MaxPool2d(kernel_size=2),
        )


@dataclass(frozen=True)
class FCDenseNetConfig:
    """Settings of FC-DenseNet; the defaults are FC-DenseNet56 (see :data:`VARIANTS` for 67 and 103).

    Attributes:
        sequences: input sequences, in channel order (SeqSeg: T1, T1c, T2).
        first_channels: maps of the first 3 x 3 convolution (48 in the paper); a multiple of ``num_groups``.
        growth_rate: maps each layer adds (k: 12 for FC-DenseNet56, 16 for 67 and 103); a multiple of
            ``num_groups``.
        down_layers: layers of each down-path dense block (one pooling per block).
        bottleneck_layers: layers of the bottleneck dense block.
        up_layers: layers of each up-path dense block, deepest first; as many as ``down_layers`` (the paper
            mirrors them).
        dropout: dropout probability after every convolution but the first and the last (0.2 in the paper).
        num_groups: group-normalisation groups (our replacement for batch normalisation).
        prior_probability: initial tumour probability of every pixel (output bias ``logit(p)``), as in ``deu``;
            ``None`` keeps PyTorch's default initialisation.
    """

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    first_channels: int = 48
    growth_rate: int = 12
    down_layers: tuple[int, ...] = (4, 4, 4, 4, 4)
    bottleneck_layers: int = 4
    up_layers: tuple[int, ...] = (4, 4, 4, 4, 4)
    dropout: float = 0.2
    num_groups: int = 4
    prior_probability: float | None = 0.01

    def __post_init__(self) -> None:
        if len(self.sequences) < 1 or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must be one or more distinct names, got {list(self.sequences)}")
        if self.num_groups < 1:
            raise ValueError(f"num_groups must be at least 1, got {self.num_groups}")
        # Every normalised tensor is a sum of first_channels and multiples of growth_rate.
        check_groups(self.first_channels, self.num_groups, "first_channels")
        check_groups(self.growth_rate, self.num_groups, "growth_rate")
        if not self.down_layers or len(self.up_layers) != len(self.down_layers):
            raise ValueError(
                f"down_layers and up_layers must be non-empty and equally long, "
                f"got {list(self.down_layers)} and {list(self.up_layers)}"
            )
        if min(*self.down_layers, *self.up_layers, self.bottleneck_layers) < 1:
            raise ValueError("every dense block needs at least one layer")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.prior_probability is not None and not 0.0 < self.prior_probability < 1.0:
            raise ValueError(f"prior_probability must be in (0, 1) or null, got {self.prior_probability}")

    @property
    def size_divisor(self) -> int:
        """Input height and width must be multiples of this (``2 ** number of poolings``)."""
        return 2 ** len(self.down_layers)


#: Config overrides of the paper's three models (``build_model("fc-densenet", VARIANTS["fc-densenet103"])``).
VARIANTS: dict[str, dict[str, Any]] = {
    "fc-densenet56": {"growth_rate": 12, "down_layers": [4] * 5, "bottleneck_layers": 4, "up_layers": [4] * 5},
    "fc-densenet67": {"growth_rate": 16, "down_layers": [5] * 5, "bottleneck_layers": 5, "up_layers": [5] * 5},
    "fc-densenet103": {
        "growth_rate": 16,
        "down_layers": [4, 5, 7, 10, 12],
        "bottleneck_layers": 15,
        "up_layers": [12, 10, 7, 5, 4],
    },
}

_TINY = {
    "first_channels": 8,
    "growth_rate": 4,
    "down_layers": [1, 1, 1],
    "bottleneck_layers": 1,
    "up_layers": [1, 1, 1],
}


@register_model("fc-densenet", FCDenseNetConfig, tiny_overrides=_TINY)
class FCDenseNet(nn.Module):
    """FC-DenseNet; input ``(B, C, H, W)`` -> logits ``(B, 1, H, W)``, H and W multiples of ``2 ** num_blocks``."""

    def __init__(self, config: FCDenseNetConfig) -> None:
        super().__init__()
        self.config = config
        growth, dropout, groups = config.growth_rate, config.dropout, config.num_groups
        self.first = nn.Conv2d(len(config.sequences), config.first_channels, kernel_size=3, padding=1)
        channels = config.first_channels
        self.down_blocks = nn.ModuleList()
        self.transitions_down = nn.ModuleList()
        skip_channels = []
        for num_layers in config.down_layers:
            block = TiramisuDenseBlock(
                channels, num_layers, growth, keep_input=True, dropout=dropout, num_groups=groups
            )
            self.down_blocks.append(block)
            channels = block.out_channels
            skip_channels.append(channels)
            self.transitions_down.append(TransitionDown(channels, dropout=dropout, num_groups=groups))
        self.bottleneck = TiramisuDenseBlock(
            channels, config.bottleneck_layers, growth, keep_input=False, dropout=dropout, num_groups=groups
        )
        upsampled = self.bottleneck.out_channels
        self.transitions_up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for index, (num_layers, skip) in enumerate(zip(config.up_layers, reversed(skip_channels), strict=True)):
            self.transitions_up.append(
                nn.ConvTranspose2d(upsampled, upsampled, kernel_size=3, stride=2, padding=1, output_padding=1)
            )
            is_last = index == len(config.up_layers) - 1
            block = TiramisuDenseBlock(
                upsampled + skip, num_layers, growth, keep_input=is_last, dropout=dropout, num_groups=groups
            )
            self.up_blocks.append(block)
            upsampled = block.out_channels
        self.head = nn.Conv2d(upsampled, 1, kernel_size=1)
        init_prior_bias(self.head, config.prior_probability)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is ``(B, C, H, W)`` with H and W multiples of the size divisor."""
        check_input(
            images, model_name="fc-densenet", sequences=self.config.sequences, size_divisor=self.config.size_divisor
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, C, H, W)`` (channels in ``config.sequences`` order)."""
        self.check_input(images)
        x = self.first(images)
        skips = []
        for block, transition in zip(self.down_blocks, self.transitions_down, strict=True):
            x = block(x)
            skips.append(x)
            x = transition(x)
        x = self.bottleneck(x)
        for transition, block, skip in zip(self.transitions_up, self.up_blocks, reversed(skips), strict=True):
            x = block(torch.cat([transition(x), skip], dim=1))
        return self.head(x)
