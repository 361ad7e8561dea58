"""RANet: recurrent attention network, SeqSeg's feature-level segmenter (Tao et al., MedIA 2022, section 3.2, Fig. 1c).

Mapping to the paper (levels ``i = 1 ... 5``, shallow to deep; sizes for an ``H x W`` input):

* **Encoder** (3.2.1): a ResNet (:class:`~npcseg.models.resnet.ResNetEncoder`, depth 18/34/50, batch norm; the
  paper's is ImageNet-pretrained: give a local torchvision-named file in ``encoder_weights``) giving
  ``X_1`` = stem (H/2), ``X_2 ... X_5`` = layer1 ... layer4 (H/4 ... H/32). Input channels = the sequences
  (T1, T1c, T2 in the paper; the first convolution of pre-trained weights is adapted to another count).
* **cRAM** (3.2.2, eq. 2): :class:`~npcseg.models.attention.ChannelRecurrentAttention` over ``X_5 ... X_1`` (deepest
  first): ``v_i = conv(GAP(X_i))``, ``v'_i = LSTM(v_i; h_{i-1})``, ``A_i = sigmoid(conv(v'_i))`` (C_i x 1 x 1) and
  **eq. (2)** ``U_i = A_i ⊙ X_i``.
* **Global context** (3.2.1): global average pooling of the deepest attended map ``U_5``, then a 1 x 1 convolution
  + ReLU to ``context_width`` channels ``G`` (the projection is ours).
* **Decoder** (3.2.1, "the upsampling results are combined with the attention feature map from the cRAM"):
  ``D_5 = block(U_5)``, ``D_i = block(concat(up(D_{i+1}), U_i))`` for ``i = 4 ... 1``, with ``up`` bilinear x2
  and ``block`` two 3 x 3 conv-norm-ReLU (:class:`~npcseg.models.unet.DoubleConv`) to ``decoder_widths[i-1]``
  channels (the upsampling kind and the widths are ours).
* **rRAM** (3.2.3, eq. 3): :class:`~npcseg.models.attention.RegionRecurrentAttention` over ``D_1 ... D_5``
  (shallowest first): **eq. (3)** ``A^r_i = sigmoid(f(D_i, h_{i-1}))`` with ``f`` = adaptive pooling to ``S x S``,
  1 x 1 convolution, LSTM and a linear map back to ``S x S``, upsampled bilinearly to ``D_i``'s size before the
  sigmoid; ``R_i = A^r_i ⊙ D_i``.
* **Fusion** ("the attention feature maps of rRAM are convoluted together with the global contextual feature
  map"): each ``R_i`` -> 1 x 1 convolution to ``fusion_width`` channels -> bilinear resize to H/2; these and ``G``
  (broadcast over H/2 x W/2) are concatenated -> 3 x 3 conv-norm-ReLU -> 1 x 1 convolution to one logit -> bilinear
  x2 to H x W. The network returns logits; the paper's sigmoid lives in the loss and in inference.

The paper gives no widths, LSTM sizes, S or encoder depth for RANet: all are config fields, with defaults sized for
CPU training (ResNet-34, decoder 32 ... 256). Height and width must be multiples of 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from npcseg.models.attention import ChannelRecurrentAttention, RegionRecurrentAttention
from npcseg.models.blocks import check_groups, check_input, init_prior_bias
from npcseg.models.registry import register_model
from npcseg.models.resnet import RESNET_LAYOUTS, ResNetEncoder, load_resnet_weights
from npcseg.models.unet import DoubleConv, Norm, norm_layer

NUM_LEVELS = 5


@dataclass(frozen=True)
class RANetConfig:
    """Settings of RANet (the paper gives none of the sizes; all defaults are our choices).

    Attributes:
        sequences: input sequences, in channel order (the paper: T1, T1c, T2).
        encoder_depth: ResNet depth, 18, 34 or 50.
        encoder_width: ResNet base width (64 = torchvision, needed for pre-trained weights; smaller for tests).
        encoder_weights: optional path of a LOCAL ResNet state dict with torchvision key names (e.g. ImageNet
            weights you downloaded yourself), loaded when the network is built; ``None``: random initialisation.
            Nothing is ever downloaded. Set it to ``None`` when rebuilding a trained network to load its checkpoint.
        decoder_widths: channels of decoder levels ``D_1 ... D_5`` (H/2 ... H/32).
        channel_hidden_size: cRAM vector length and LSTM hidden size.
        region_size: rRAM grid side S (the paper: S < min(H_i, W_i); 8 suits 256-384 pixel inputs).
        region_hidden_size: rRAM LSTM hidden size.
        region_channels: maps rRAM's 1 x 1 convolution reduces each pooled level to before flattening.
        context_width: channels of the global context map G.
        fusion_width: channels of each projected rRAM map and of the fusion convolution.
        norm: ``"batch"`` or ``"group"`` normalisation in the decoder and fusion (the encoder is always batch norm).
        num_groups: group-norm groups (``norm="group"`` only).
        prior_probability: initial tumour probability (output bias ``logit(p)``), as ``DEUConfig``; None: default.
    """

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    encoder_depth: int = 34
    encoder_width: int = 64
    encoder_weights: str | None = None
    decoder_widths: tuple[int, ...] = (32, 64, 128, 128, 256)
    channel_hidden_size: int = 128
    region_size: int = 8
    region_hidden_size: int = 128
    region_channels: int = 2
    context_width: int = 64
    fusion_width: int = 16
    norm: Norm = "batch"
    num_groups: int = 8
    prior_probability: float | None = 0.01

    def __post_init__(self) -> None:
        if len(self.sequences) < 1 or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences must be one or more distinct names, got {list(self.sequences)}")
        if self.encoder_depth not in RESNET_LAYOUTS:
            raise ValueError(f"encoder_depth must be one of {sorted(RESNET_LAYOUTS)}, got {self.encoder_depth}")
        if len(self.decoder_widths) != NUM_LEVELS:
            raise ValueError(f"decoder_widths must give {NUM_LEVELS} values (D_1 ... D_5), got {self.decoder_widths}")
        sizes = {
            "encoder_width": self.encoder_width,
            "channel_hidden_size": self.channel_hidden_size,
            "region_size": self.region_size,
            "region_hidden_size": self.region_hidden_size,
            "region_channels": self.region_channels,
            "context_width": self.context_width,
            "fusion_width": self.fusion_width,
            "num_groups": self.num_groups,
            "smallest decoder width": min(self.decoder_widths),
        }
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {self.norm!r}")
        if self.norm == "group":
            for index, width in enumerate(self.decoder_widths):
                check_groups(width, self.num_groups, f"decoder_widths[{index}]")
            check_groups(self.fusion_width, self.num_groups, "fusion_width")
        if self.prior_probability is not None and not 0.0 < self.prior_probability < 1.0:
            raise ValueError(f"prior_probability must be in (0, 1) or null, got {self.prior_probability}")


_TINY = {
    "encoder_depth": 18,
    "encoder_width": 8,
    "decoder_widths": [8, 8, 8, 8, 8],
    "channel_hidden_size": 8,
    "region_size": 2,
    "region_hidden_size": 8,
    "region_channels": 1,
    "context_width": 8,
    "fusion_width": 8,
}


@register_model("ranet", RANetConfig, tiny_overrides=_TINY)
class RANet(nn.Module):
    """RANet; input ``(B, C, H, W)`` -> logits ``(B, 1, H, W)``, H and W multiples of 32 (see the module docstring).

    Attributes:
        config: the settings it was built from.
        encoder: the ResNet encoder (``encoder.channels`` gives the channels of ``X_1 ... X_5``).
        cram: channel recurrent attention over the encoder levels (eq. 2).
        rram: region recurrent attention over the decoder levels (eq. 3).
        size_divisor: 32.
    """

    size_divisor = ResNetEncoder.size_divisor

    def __init__(self, config: RANetConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ResNetEncoder(config.encoder_depth, len(config.sequences), base_width=config.encoder_width)
        if config.encoder_weights is not None:
            load_resnet_weights(self.encoder, config.encoder_weights)
        encoder_channels = self.encoder.channels
        widths = config.decoder_widths
        self.cram = ChannelRecurrentAttention(encoder_channels, hidden_size=config.channel_hidden_size)
        self.context = nn.Sequential(nn.Conv2d(encoder_channels[-1], config.context_width, 1), nn.ReLU(inplace=True))
        block = partial(DoubleConv, norm=config.norm, num_groups=config.num_groups)
        self.decoders = nn.ModuleList(
            block(encoder_channels[level] + (widths[level + 1] if level + 1 < NUM_LEVELS else 0), widths[level])
            for level in range(NUM_LEVELS)
        )
        self.rram = RegionRecurrentAttention(
            widths,
            region_size=config.region_size,
            hidden_size=config.region_hidden_size,
            region_channels=config.region_channels,
        )
        self.projections = nn.ModuleList(nn.Conv2d(width, config.fusion_width, 1) for width in widths)
        self.fusion = nn.Sequential(
            nn.Conv2d(NUM_LEVELS * config.fusion_width + config.context_width, config.fusion_width, 3, padding=1),
            norm_layer(config.norm, config.fusion_width, config.num_groups),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(config.fusion_width, 1, 1)
        init_prior_bias(self.head, config.prior_probability)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is ``(B, len(sequences), H, W)`` with H and W multiples of 32.

        The encoder adds one more: in training mode, batch 1 of a 32 x 32 slice (batch norm on one value).
        """
        check_input(images, model_name="RANet", sequences=self.config.sequences, size_divisor=self.size_divisor)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, C, H, W)`` (channels in ``config.sequences`` order)."""
        self.check_input(images)
        attended = self.cram(self.encoder(images))  # U_i = A_i ⊙ X_i, eq. (2)
        context = self.context(F.adaptive_avg_pool2d(attended[-1], 1))  # G, (B, context_width, 1, 1)
        x = self.decoders[-1](attended[-1])
        decoded = [x]
        for level in reversed(range(NUM_LEVELS - 1)):
            upsampled = F.interpolate(x, size=attended[level].shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoders[level](torch.cat([upsampled, attended[level]], dim=1))
            decoded.insert(0, x)
        refined = self.rram(decoded)  # R_i = A^r_i ⊙ D_i, eq. (3)
        size = refined[0].shape[-2:]
        side = [
            F.interpolate(projection(feature), size=size, mode="bilinear", align_corners=False)
            for projection, feature in zip(self.projections, refined, strict=True)
        ]
        fused = self.fusion(torch.cat([*side, context.expand(-1, -1, *size)], dim=1))
        return F.interpolate(self.head(fused), size=images.shape[-2:], mode="bilinear", align_corners=False)
