"""Attention over the levels of a feature pyramid: squeeze-and-excitation, cRAM and rRAM (SeqSeg, Tao et al. 2022).

All three classes share one interface, so RANet and the U-Net variants use the very same modules:

* built from ``channels``, the channels of each level listed **shallow to deep** (``X_1 ... X_n`` in the paper);
* ``forward(features)`` takes the list of level maps ``X_i`` ``(B, C_i, H_i, W_i)`` in that order and returns the
  attended maps ``A_i * X_i`` in the same order and shapes;
* ``weights(features)`` returns the attention maps ``A_i`` themselves, values in (0, 1): ``(B, C_i, 1, 1)`` for the
  channel attentions, ``(B, 1, H_i, W_i)`` for the region attention.

The recurrent modules (SeqSeg section 3.2.2-3.2.3) run one ``nn.LSTMCell`` over the levels, with zero initial hidden
and cell states; each level has its own input and output projection (levels differ in channels), the LSTM is shared.
:class:`ChannelRecurrentAttention` (cRAM) visits the levels from the deepest to the shallowest, so high-level context
recalibrates low-level channels; :class:`RegionRecurrentAttention` (rRAM) from the shallowest to the deepest, as the
paper states. Both orders are a constructor option (``order``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Order = Literal["deep_to_shallow", "shallow_to_deep"]


def _check_levels(features: Sequence[torch.Tensor], channels: Sequence[int], where: str) -> None:
    if len(features) != len(channels):
        raise ValueError(f"{where}: expected {len(channels)} feature levels, got {len(features)}")
    for index, (feature, expected) in enumerate(zip(features, channels, strict=True)):
        if feature.ndim != 4 or feature.shape[1] != expected:
            raise ValueError(
                f"{where}: level {index} must be (batch, {expected}, height, width), got {tuple(feature.shape)}"
            )


def _visit_order(num_levels: int, order: Order) -> list[int]:
    levels = list(range(num_levels))
    return levels[::-1] if order == "deep_to_shallow" else levels


def _check_channels(channels: Sequence[int], where: str) -> tuple[int, ...]:
    if len(channels) < 1 or any(value < 1 for value in channels):
        raise ValueError(f"{where}: channels must be one or more positive counts, got {list(channels)}")
    return tuple(channels)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation on every level independently (Hu et al., CVPR 2018); the non-recurrent baseline.

    Level ``i``: ``A_i = sigmoid(conv_2(relu(conv_1(GAP(X_i)))))``, with 1 x 1 convolutions ``C_i -> r_i -> C_i``,
    ``r_i = max(min_hidden, C_i // reduction)``; output ``A_i * X_i``.

    Args:
        channels: channels of each level, shallow to deep.
        reduction: channel reduction ratio of the bottleneck (16 in the SE paper).
        min_hidden: smallest bottleneck width (keeps narrow levels trainable).
    """

    def __init__(self, channels: Sequence[int], *, reduction: int = 16, min_hidden: int = 4) -> None:
        super().__init__()
        self.channels = _check_channels(channels, "SqueezeExcitation")
        if reduction < 1 or min_hidden < 1:
            raise ValueError(f"reduction and min_hidden must be positive, got {reduction} and {min_hidden}")
        self.excite = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(count, max(min_hidden, count // reduction), 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(max(min_hidden, count // reduction), count, 1),
            )
            for count in self.channels
        )

    def weights(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Channel attentions ``A_i`` ``(B, C_i, 1, 1)`` in (0, 1), shallow to deep."""
        _check_levels(features, self.channels, "SqueezeExcitation")
        return [
            torch.sigmoid(excite(F.adaptive_avg_pool2d(feature, 1)))
            for excite, feature in zip(self.excite, features, strict=True)
        ]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Attended maps ``A_i * X_i`` (broadcast over H and W), shallow to deep."""
        return [feature * weight for feature, weight in zip(features, self.weights(features), strict=True)]


class ChannelRecurrentAttention(nn.Module):
    """cRAM: channel attention whose LSTM carries context across levels (SeqSeg eq. 2).

    For each level, in ``order`` (deepest first by default): ``v_i = conv_in_i(GAP(X_i))`` (a vector of
    ``hidden_size``), ``(v'_i, c_i) = LSTM(v_i; v'_{prev}, c_{prev})``, ``W_i = conv_out_i(v'_i)``,
    ``A_i = sigmoid(W_i)`` ``(C_i x 1 x 1)``, and ``U_i = A_i * X_i`` (eq. 2, broadcast over H and W). The 1 x 1
    convolutions act on ``(B, ., 1, 1)`` maps, as the paper's "convolution" on the pooled vector.

    Args:
        channels: channels of each level, shallow to deep.
        hidden_size: length of ``v_i`` and of the LSTM's hidden state (paper-silent; our choice).
        order: the order the LSTM visits the levels; the paper's is ``"deep_to_shallow"``.
    """

    def __init__(self, channels: Sequence[int], *, hidden_size: int = 128, order: Order = "deep_to_shallow") -> None:
        super().__init__()
        self.channels = _check_channels(channels, "ChannelRecurrentAttention")
        if hidden_size < 1:
            raise ValueError(f"ChannelRecurrentAttention: hidden_size must be positive, got {hidden_size}")
        self.order: Order = order
        self.squeeze = nn.ModuleList(nn.Conv2d(count, hidden_size, 1) for count in self.channels)
        self.lstm = nn.LSTMCell(hidden_size, hidden_size)
        self.excite = nn.ModuleList(nn.Conv2d(hidden_size, count, 1) for count in self.channels)

    def weights(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Channel attentions ``A_i`` ``(B, C_i, 1, 1)`` in (0, 1), shallow to deep."""
        _check_levels(features, self.channels, "ChannelRecurrentAttention")
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        weights: list[torch.Tensor | None] = [None] * len(features)
        for index in _visit_order(len(features), self.order):
            vector = self.squeeze[index](F.adaptive_avg_pool2d(features[index], 1)).flatten(1)
            state = self.lstm(vector, state)
            weights[index] = torch.sigmoid(self.excite[index](state[0][:, :, None, None]))
        return [weight for weight in weights if weight is not None]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Attended maps ``U_i = A_i * X_i`` (eq. 2), shallow to deep."""
        return [feature * weight for feature, weight in zip(features, self.weights(features), strict=True)]


class RegionRecurrentAttention(nn.Module):
    """rRAM: spatial attention on an ``S x S`` grid whose LSTM carries context across levels (SeqSeg eq. 3).

    For each level, in ``order`` (shallowest first by default): ``Z_i = adaptive_avg_pool(X_i, S x S)``
    ``(C_i x S x S)``; ``v_i = flatten(conv_in_i(Z_i))`` with a 1 x 1 convolution to ``region_channels`` maps (a
    vector of ``region_channels * S * S``); ``(v'_i, c_i) = LSTM(v_i; v'_{prev}, c_{prev})``;
    ``f_i = reshape(linear_out_i(v'_i), S x S)``; ``A^r_i = sigmoid(upsample(f_i, H_i x W_i))`` (eq. 3; bilinear
    upsampling, ``align_corners=False``); output ``A^r_i * X_i``.

    The paper asks for ``S < min(H_i, W_i)``. Adaptive pooling also works when a level is smaller than ``S`` (values
    are repeated), so the module accepts any level size; pick ``S`` below the deepest level's size for the input
    size you train at.

    Args:
        channels: channels of each level, shallow to deep.
        region_size: ``S``, the side of the pooled grid and of the attention map before upsampling.
        hidden_size: the LSTM's hidden size.
        region_channels: maps the input convolution reduces ``Z_i`` to (the vector is their flattening).
        order: the order the LSTM visits the levels; the paper's is ``"shallow_to_deep"``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        region_size: int = 8,
        hidden_size: int = 128,
        region_channels: int = 2,
        order: Order = "shallow_to_deep",
    ) -> None:
        super().__init__()
        self.channels = _check_channels(channels, "RegionRecurrentAttention")
        if region_size < 1 or hidden_size < 1 or region_channels < 1:
            raise ValueError(
                "RegionRecurrentAttention: region_size, hidden_size and region_channels must be positive, got "
                f"{region_size}, {hidden_size} and {region_channels}"
            )
        self.order: Order = order
        self.region_size = region_size
        self.squeeze = nn.ModuleList(nn.Conv2d(count, region_channels, 1) for count in self.channels)
        self.lstm = nn.LSTMCell(region_channels * region_size**2, hidden_size)
        self.excite = nn.ModuleList(nn.Linear(hidden_size, region_size**2) for _ in self.channels)

    def region_logits(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``f(X_i, h_{i-1})``: attention logits on the ``S x S`` grid, ``(B, 1, S, S)`` per level, shallow to deep."""
        _check_levels(features, self.channels, "RegionRecurrentAttention")
        size = self.region_size
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        logits: list[torch.Tensor | None] = [None] * len(features)
        for index in _visit_order(len(features), self.order):
            pooled = F.adaptive_avg_pool2d(features[index], size)
            state = self.lstm(self.squeeze[index](pooled).flatten(1), state)
            logits[index] = self.excite[index](state[0]).view(-1, 1, size, size)
        return [value for value in logits if value is not None]

    def weights(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Region attentions ``A^r_i`` ``(B, 1, H_i, W_i)`` in (0, 1): the ``S x S`` logits upsampled, then sigmoid."""
        return [
            torch.sigmoid(F.interpolate(logits, size=feature.shape[-2:], mode="bilinear", align_corners=False))
            for logits, feature in zip(self.region_logits(features), features, strict=True)
        ]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Attended maps ``A^r_i * X_i`` (broadcast over channels), shallow to deep."""
        return [feature * weight for feature, weight in zip(features, self.weights(features), strict=True)]
