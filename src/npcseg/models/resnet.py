"""ResNet-18/34/50 feature encoder for 2D slices with any number of input channels (He et al., CVPR 2016).

Written here rather than taken from torchvision (not a dependency); parameter and buffer names follow torchvision's
``ResNet`` exactly (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``layer4.2.downsample.0``), so an ImageNet state dict
saved from torchvision loads with :func:`load_resnet_weights`. The classifier (``avgpool``, ``fc``) is left out: the
encoder returns the feature map of every level instead.

=========  ===========  =================  ==================================
level      resolution   ResNet-18/34       ResNet-50 (bottleneck blocks)
=========  ===========  =================  ==================================
stem       H/2 x W/2    64 channels        64
layer1     H/4 x W/4    64                 256
layer2     H/8 x W/8    128                512
layer3     H/16 x W/16  256                1024
layer4     H/32 x W/32  512                2048
=========  ===========  =================  ==================================

(the channels are for ``base_width=64``, torchvision's widths; another ``base_width`` scales them all.) Normalisation
is batch normalisation, as in the paper and in the pre-trained weights: in ``train()`` mode it normalises with the
batch's statistics and updates the running averages, in ``eval()`` mode it uses the running averages.

Weights are never downloaded: pass a local file (e.g. a torchvision ``resnet34-*.pth`` you fetched yourself) to
:func:`load_resnet_weights`; without one, convolutions get Kaiming-normal initialisation (fan-out, ReLU gain, as
torchvision) and batch norms weight 1 and bias 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Blocks per stage of each supported depth, and whether the depth uses bottleneck blocks.
RESNET_LAYOUTS: dict[int, tuple[tuple[int, int, int, int], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
}


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm and a residual connection (ResNet-18/34); expansion 1."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _shortcut(in_channels, channels * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1 x 1 -> 3 x 3 (strided, as torchvision's "ResNet v1.5") -> 1 x 1 convolutions (ResNet-50); expansion 4."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, channels * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """Projection shortcut (1 x 1 conv + batch norm) when the shape changes, else ``None`` (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class ResNetEncoder(nn.Module):
    """ResNet without its classifier; ``forward`` returns the five level feature maps (stem, layer1 ... layer4).

    Args:
        depth: 18, 34 or 50.
        in_channels: input channels (the number of MR sequences); 3 matches ImageNet weights directly.
        base_width: channels of the stem and of layer1's blocks (64 in torchvision; smaller only for tests).

    Attributes:
        channels: channels of the five returned levels, shallow to deep.
        size_divisor: 32; the input height and width must be multiples of it.
    """

    size_divisor = 32

    def __init__(self, depth: int = 34, in_channels: int = 3, *, base_width: int = 64) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        if in_channels < 1 or base_width < 1:
            raise ValueError(f"in_channels and base_width must be positive, got {in_channels} and {base_width}")
        blocks_per_stage, is_bottleneck = RESNET_LAYOUTS[depth]
        block: type[BasicBlock | Bottleneck] = Bottleneck if is_bottleneck else BasicBlock
        self.depth = depth
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = [base_width]
        current = base_width
        stages = []
        for index, num_blocks in enumerate(blocks_per_stage):
            width = base_width * 2**index
            stride = 1 if index == 0 else 2
            layers = [block(current, width, stride)]
            current = width * block.expansion
            layers += [block(current, width) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            channels.append(current)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels: tuple[int, ...] = tuple(channels)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps ``[stem (H/2), layer1 (H/4), layer2 (H/8), layer3 (H/16), layer4 (H/32)]``.

        Raises:
            ValueError: unless ``images`` is ``(B, in_channels, H, W)`` with H and W positive multiples of 32.
        """
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"ResNet-{self.depth} encoder expects input (batch, {self.in_channels}, height, width) with "
                f"{self.in_channels} channels, got shape {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if height == 0 or width == 0 or height % self.size_divisor or width % self.size_divisor:
            raise ValueError(
                f"ResNet encoder needs height and width that are positive multiples of {self.size_divisor}, "
                f"got {height} x {width}"
            )
        if self.training and images.shape[0] * (height // 32) * (width // 32) == 1:
            raise ValueError(
                f"ResNet encoder in training mode: batch norm needs more than one value per channel at layer4 "
                f"(H/32 x W/32), got batch 1 of {height} x {width}; use a larger slice or batch, or eval()"
            )
        stem = self.relu(self.bn1(self.conv1(images)))
        level1 = self.layer1(self.maxpool(stem))
        level2 = self.layer2(level1)
        level3 = self.layer3(level2)
        level4 = self.layer4(level3)
        return [stem, level1, level2, level3, level4]


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_resnet_weights` did.

    Attributes:
        path: the weights file.
        num_loaded: tensors copied into the encoder.
        ignored: keys of the file that were skipped on purpose (the classifier, ``fc.*``).
        first_conv_adapted: whether ``conv1.weight`` was converted to another number of input channels.
    """

    path: Path
    num_loaded: int
    ignored: tuple[str, ...]
    first_conv_adapted: bool


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Convert a first-convolution weight ``(O, C_file, k, k)`` to ``in_channels`` input channels.

    Every new channel gets the mean of the file's channels scaled by ``C_file / in_channels``, so the summed weight
    over input channels is unchanged: an image with the same value ``v`` in every channel gives the same response
    as the original network on a grey RGB image of value ``v`` (for 1 channel: the sum over R, G and B).
    """
    if weight.shape[1] == in_channels:
        return weight
    mean = weight.mean(dim=1, keepdim=True) * (weight.shape[1] / in_channels)
    return mean.repeat(1, in_channels, 1, 1).contiguous()


def _state_dict_of(loaded: Any, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise ValueError(f"{path}: expected a state dict (name -> tensor) or {{'state_dict': ...}}")
    if loaded and all(key.startswith("module.") for key in loaded):  # saved from DataParallel
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return loaded


def load_resnet_weights(encoder: ResNetEncoder, path: str | Path) -> WeightsReport:
    """Load a local ResNet state dict with torchvision key names into ``encoder`` (in place; never downloads).

    The file is read with ``torch.load(weights_only=True)`` and may hold the state dict itself or
    ``{"state_dict": state_dict}`` (``module.`` prefixes from ``DataParallel`` are stripped). ``fc.*`` is ignored.
    When the file's first convolution has another number of input channels than the encoder,
    :func:`adapt_first_conv` converts it. ``num_batches_tracked`` counters may be absent (older torchvision files).

    Args:
        encoder: the encoder to fill.
        path: the weights file.

    Returns:
        a :class:`WeightsReport`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a state dict, or keys are missing, unexpected or of the wrong shape (e.g. a
            ResNet-50 file for a ResNet-34 encoder); the message lists them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ResNet weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable or unsafe files
        raise ValueError(f"{path}: cannot read a weights-only torch file ({error})") from error
    source = _state_dict_of(loaded, path)
    ignored = tuple(sorted(key for key in source if key.startswith("fc.")))
    source = {key: value for key, value in source.items() if not key.startswith("fc.")}
    first_conv_adapted = False
    if "conv1.weight" in source and source["conv1.weight"].ndim == 4:
        original = source["conv1.weight"]
        source["conv1.weight"] = adapt_first_conv(original, encoder.in_channels)
        first_conv_adapted = original.shape[1] != encoder.in_channels
    target = encoder.state_dict()
    missing = sorted(key for key in target if key not in source and not key.endswith("num_batches_tracked"))
    unexpected = sorted(key for key in source if key not in target)
    mismatched = sorted(
        f"{key}: file {tuple(value.shape)} vs encoder {tuple(target[key].shape)}"
        for key, value in source.items()
        if key in target and value.shape != target[key].shape
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{len(keys)} {label} key(s): {shown}")
    if problems:
        raise ValueError(
            f"{path} does not fit a ResNet-{encoder.depth} encoder (torchvision key names expected): "
            + "; ".join(problems)
        )
    encoder.load_state_dict(source, strict=False)
    if first_conv_adapted:
        logger.info("%s: first convolution adapted to %d input channels", path, encoder.in_channels)
    return WeightsReport(path, len(source), ignored, first_conv_adapted)
