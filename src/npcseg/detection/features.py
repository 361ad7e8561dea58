"""The frozen CNN backbone of the detector's state and a per-slice feature cache (SeqSeg; METHODS.md, method 2).

The state of the agent (the environment builds it) holds global features of the whole slice and local features of
the current box's crop, both from one frozen CNN: the paper uses an ImageNet ResNet-50 on 224 x 224 inputs. Ours:

* :class:`Backbone` -- a :class:`~npcseg.models.resnet.ResNetEncoder` (``config.encoder_depth``) in eval mode with
  no gradients; features = global average pool of the deepest level (``feature_size`` = its channels, 512 for
  ResNet-18/34 at the default width). Weights (:func:`build_backbone`): random (seeded), a torchvision-named ResNet
  file, or the encoder of a trained npcseg segmentation network (e.g. RANet; "pre-trained by the segmentation task").
* :func:`resize_crop` -- the box's region resampled bilinearly to ``input_size`` x ``input_size`` (continuous box
  coordinates; outside the slice the nearest border value is repeated).
* :class:`SliceFeatures` -- one slice's global features plus a cache of crop features keyed by the box's integer
  pixel window (:meth:`~npcseg.detection.boxes.Box.pixel_bounds`): an episode revisits windows, and every epoch
  replays episodes from the same start box, so most crops are seen before. To make a feature a function of its key
  alone (not of which box first filled the entry), the crop is always taken from the pixel window itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from npcseg.detection.boxes import Box
from npcseg.detection.config import DetectorConfig
from npcseg.models.resnet import ResNetEncoder, load_resnet_weights

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "encoder."


class Backbone(nn.Module):
    """A frozen ResNet encoder giving one feature vector per image.

    Args:
        encoder: the encoder; it is switched to eval mode and its parameters stop requiring gradients.
        grid: the deepest level is average-pooled to ``grid x grid`` cells (1 = the global average pool of the
            paper; 2 keeps which quarter of the image or box the features come from).

    Attributes:
        feature_size: length of a feature vector (channels of the deepest level x grid^2).
    """

    def __init__(self, encoder: ResNetEncoder, grid: int = 1) -> None:
        super().__init__()
        if grid < 1:
            raise ValueError(f"the feature grid must be at least 1, got {grid}")
        self.encoder = encoder
        self.grid = grid
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.feature_size: int = int(encoder.channels[-1]) * grid * grid
        self.eval()

    @property
    def in_channels(self) -> int:
        return int(self.encoder.in_channels)

    def train(self, mode: bool = True) -> Backbone:
        """Stays in eval mode whatever is asked: batch norm must keep its running statistics (frozen backbone)."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(N, feature_size)`` of images ``(N, C, S, S)`` (S a multiple of 32): the deepest level
        average-pooled to ``grid x grid`` (channel-major), computed under ``torch.inference_mode``."""
        with torch.inference_mode():
            deepest = self.encoder(images)[-1]
            if self.grid == 1:
                return deepest.mean(dim=(2, 3))
            return nn.functional.adaptive_avg_pool2d(deepest, self.grid).flatten(1)


def _encoder_state_of_checkpoint(loaded: Any) -> dict[str, torch.Tensor] | None:
    """The ``encoder.*`` weights (prefix removed) of an npcseg segmentation checkpoint, ``None`` if it is not one."""
    if not isinstance(loaded, dict) or not isinstance(loaded.get("model"), dict):
        return None
    state = {
        key.removeprefix(ENCODER_PREFIX): value
        for key, value in loaded["model"].items()
        if isinstance(key, str) and key.startswith(ENCODER_PREFIX) and isinstance(value, torch.Tensor)
    }
    return state or None


def _checkpoint_file(path: Path) -> Path:
    """A weights file, or the best (else last) checkpoint of a segmentation run folder."""
    if path.is_dir():
        from npcseg.inference.runs import checkpoint_path

        return checkpoint_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    return path


def build_backbone(config: DetectorConfig, in_channels: int, *, base_width: int | None = None) -> Backbone:
    """The detector's frozen backbone.

    Args:
        config: ``encoder_depth``, ``backbone_weights`` and ``seed`` are used.
        in_channels: number of input channels (sequences).
        base_width: stem width of a randomly initialised or torchvision-named encoder; ``None`` takes
            ``config.backbone_width`` (64 = torchvision). An npcseg checkpoint's encoder keeps its own width.

    ``config.backbone_weights`` may name (1) torchvision-named ResNet weights (read by
    :func:`~npcseg.models.resnet.load_resnet_weights`, first convolution adapted to ``in_channels``), (2) an npcseg
    segmentation checkpoint (``{"model": state_dict, ...}``) whose network has an ``encoder`` (RANet), or (3) such a
    run folder (its ``checkpoint_best.pt``, else ``checkpoint_last.pt``). Files are read with ``weights_only=True``.
    Without weights the encoder is initialised from ``config.seed`` (the global torch random state is untouched).

    Raises:
        FileNotFoundError: the weights file or folder does not exist.
        ValueError: the file is neither kind, or its encoder has another depth or number of input channels.
    """
    if base_width is None:
        base_width = config.backbone_width
    if config.backbone_weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            encoder = ResNetEncoder(config.encoder_depth, in_channels, base_width=base_width)
            return Backbone(encoder, config.feature_grid)
    path = _checkpoint_file(Path(config.backbone_weights))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable or unsafe files
        raise ValueError(f"{path}: cannot read a weights-only torch file for the backbone ({error})") from error
    encoder_state = _encoder_state_of_checkpoint(loaded)
    if encoder_state is not None:
        width = int(encoder_state["conv1.weight"].shape[0]) if "conv1.weight" in encoder_state else base_width
        encoder = ResNetEncoder(config.encoder_depth, in_channels, base_width=width)
        try:
            encoder.load_state_dict(encoder_state, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"{path}: its network's encoder does not fit a ResNet-{config.encoder_depth} backbone with "
                f"{in_channels} input channel(s) ({str(error).splitlines()[0]}); set encoder_depth and sequences "
                "to those of the segmentation run"
            ) from error
        logger.info("backbone: encoder of the segmentation checkpoint %s (width %d)", path, width)
        return Backbone(encoder, config.feature_grid)
    encoder = ResNetEncoder(config.encoder_depth, in_channels, base_width=base_width)
    try:
        load_resnet_weights(encoder, path)
    except ValueError as error:
        raise ValueError(
            f"{path}: neither torchvision-named ResNet-{config.encoder_depth} weights nor an npcseg segmentation "
            f"checkpoint whose network has an encoder ({error})"
        ) from error
    logger.info("backbone: torchvision-named ResNet weights %s", path)
    return Backbone(encoder, config.feature_grid)


def _sampling_grid(boxes: Sequence[Box], shape: tuple[int, int], size: int) -> torch.Tensor:
    """``grid_sample`` grid ``(n, size, size, 2)`` (x, y in [-1, 1], ``align_corners=False``) sampling each box at
    the centres of a ``size`` x ``size`` grid of equal cells."""
    height, width = shape
    steps = (torch.arange(size, dtype=torch.float64) + 0.5) / size  # cell centres as fractions of the box
    grids = []
    for box in boxes:
        rows = (box.top + steps * box.height) * (2.0 / height) - 1.0
        columns = (box.left + steps * box.width) * (2.0 / width) - 1.0
        y, x = torch.meshgrid(rows, columns, indexing="ij")
        grids.append(torch.stack((x, y), dim=-1))
    return torch.stack(grids).to(torch.float32)


def _resize_crops(image: torch.Tensor, boxes: Sequence[Box], size: int) -> torch.Tensor:
    """Crops ``(n, C, size, size)`` of ``image`` ``(C, H, W)``, one per box (bilinear, border padding)."""
    grid = _sampling_grid(boxes, (int(image.shape[1]), int(image.shape[2])), size)
    batch = image.unsqueeze(0).expand(len(boxes), -1, -1, -1)
    return functional.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize_crop(image: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The region of ``box`` in ``image`` ``(C, H, W)`` resampled bilinearly to ``(C, size, size)`` float32.

    Output pixel ``(i, j)`` is the image sampled at row ``top + (i + 0.5) * height / size`` and column
    ``left + (j + 0.5) * width / size`` (pixel ``k`` covers ``[k, k + 1)``, its value sits at ``k + 0.5``); a box
    covering the whole image therefore gives exactly ``interpolate(mode="bilinear", align_corners=False)``.
    """
    if image.ndim != 3:
        raise ValueError(f"resize_crop needs an image (C, H, W), got shape {image.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return _resize_crops(tensor, [box], size)[0].numpy()


class SliceFeatures:
    """Backbone features of one slice: the whole slice (computed once) and box crops (cached by pixel window).

    Args:
        image: the slice, float32 ``(C, H, W)``.
        backbone: the frozen backbone.
        input_size: side the slice and the crops are resized to (a multiple of 32).

    Attributes:
        global_features: ``(F,)`` features of the whole slice resized to ``input_size``.
        num_hits / num_misses: crop look-ups answered from / added to the cache.
    """

    def __init__(self, image: np.ndarray, backbone: Backbone, input_size: int) -> None:
        if image.ndim != 3:
            raise ValueError(f"a detection slice must be (C, H, W), got shape {image.shape}")
        self.image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        self.shape: tuple[int, int] = (int(image.shape[1]), int(image.shape[2]))
        self.backbone = backbone
        self.input_size = input_size
        self.cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        self.num_hits = 0
        self.num_misses = 0
        whole = Box(0.0, 0.0, float(self.shape[0]), float(self.shape[1]))
        self.global_features: np.ndarray = self._compute([whole])[0]

    def _compute(self, boxes: Sequence[Box]) -> np.ndarray:
        crops = _resize_crops(self.image, boxes, self.input_size)
        return self.backbone(crops).numpy().astype(np.float32, copy=True)

    def crop_features(self, box: Box) -> np.ndarray:
        """``(F,)`` features of the crop of ``box``'s pixel window (a copy; from the cache when seen before)."""
        return self.crop_features_many([box])[0]

    def crop_features_many(self, boxes: Sequence[Box]) -> np.ndarray:
        """``(n, F)`` features of the crops of ``boxes``; the windows not cached yet go through the backbone in one
        batch and are cached."""
        keys = [box.pixel_bounds(self.shape) for box in boxes]
        new_keys = list(dict.fromkeys(key for key in keys if key not in self.cache))
        self.num_misses += len(new_keys)
        self.num_hits += len(keys) - len(new_keys)
        if new_keys:
            windows = [Box(*(float(value) for value in key)) for key in new_keys]
            for key, features in zip(new_keys, self._compute(windows), strict=True):
                self.cache[key] = features
        if not keys:
            return np.zeros((0, self.backbone.feature_size), dtype=np.float32)
        return np.stack([self.cache[key] for key in keys])
