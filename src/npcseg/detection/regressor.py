"""Supervised baseline detector: a small CNN that regresses the tumour box of a whole slice in one pass.

It stands beside the deep-Q-learning agent in the detection table, in place of the paper's Faster R-CNN (which needs
torchvision). The network is a trainable :class:`~npcseg.models.resnet.ResNetEncoder` (small ``base_width``) whose
input gets two extra coordinate channels (row and column in [-1, 1], "CoordConv"), its deepest map average-pooled
to a ``pooled_size`` x ``pooled_size`` grid, flattened, and a two-layer MLP. Pooling to a grid rather than to one
value keeps where the features are; the coordinate channels let even a 1 x 1 pool read position.

Box encoding (ours): ``(centre_row / H, centre_column / W, log(height / H), log(width / W))`` of the slice of
``H`` x ``W`` pixels; decoding always gives a box of positive size, and it does not depend on the input resize.
Loss: ``l1_weight`` x L1 of the four encoded numbers + ``giou_weight`` x (1 - GIoU) of the decoded boxes
(Rezatofighi et al., CVPR 2019). Augmentation: a left-right flip (and optionally an up-down flip) with the box flipped
the same way, and a translation by whole pixels with zero fill, the box moved the same way and clipped.

Run folder: ``config.yaml``, ``log.csv`` (one row per epoch), ``checkpoint.pt`` (weights, optimiser and generator
state after the last finished epoch; loads with ``weights_only=True``) and ``run.json``. A rerun resumes after the
last finished epoch; a finished run is not retrained; other settings or training cases are refused.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from npcseg.config import config_differences, config_to_dict, load_config, save_config
from npcseg.detection.boxes import Box
from npcseg.detection.environment import detection_slices
from npcseg.detection.scores import DetectionSummary, write_slice_scores
from npcseg.io.atomic import atomic_path, atomic_write_text
from npcseg.models.resnet import ResNetEncoder
from npcseg.preprocessing.cache import load_cache_config

logger = logging.getLogger(__name__)

CHECKPOINT_FILENAME = "checkpoint.pt"


@dataclass(frozen=True)
class RegressorConfig:
    """Everything that decides a box-regressor run's result (all values ours: the paper has no such baseline)."""

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    """Input channels, picked by name from the preprocessed cache."""
    encoder_depth: int = 18
    """Depth of the trainable ResNet encoder (18, 34 or 50)."""
    base_width: int = 16
    """Channels of the encoder's stem (64 in torchvision; small for CPU training)."""
    input_size: int = 64
    """Side in pixels every slice is resized to (a multiple of 32)."""
    pooled_size: int = 4
    """The deepest feature map is average-pooled to this many cells a side before the MLP."""
    hidden_size: int = 256
    """Width of the MLP's hidden layer."""
    epochs: int = 150
    """Passes over the training tumour slices."""
    batch_size: int = 32
    """Slices per optimiser step."""
    learning_rate: float = 1e-3
    """AdamW's start learning rate, cosine-decayed to 0 over the epochs."""
    weight_decay: float = 1e-4
    """AdamW's decoupled weight decay."""
    l1_weight: float = 1.0
    """Weight of the L1 loss on the encoded box."""
    giou_weight: float = 1.0
    """Weight of the 1 - GIoU loss."""
    flip_columns: bool = True
    """Flip slices left-right (box flipped too) with probability 1/2."""
    flip_rows: bool = False
    """Flip slices up-down with probability 1/2 (off: head-and-neck anatomy is not up-down symmetric)."""
    max_shift: float = 0.0625
    """Translate slices by up to this fraction of their side (whole pixels, zero fill), the box with them."""
    seed: int = 0
    """Seed of the initialisation, the slice order and the augmentation."""
    num_threads: int = 0
    """CPU threads for torch; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        if self.input_size < 32 or self.input_size % 32 or self.pooled_size < 1 or self.epochs < 1:
            raise ValueError("input_size must be a multiple of 32, pooled_size and epochs at least 1")
        if self.batch_size < 1 or self.learning_rate <= 0 or not 0 <= self.max_shift < 0.5:
            raise ValueError("batch_size >= 1, learning_rate > 0 and max_shift in [0, 0.5) are required")


def encode_boxes(corners: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` normalised ``(top, left, bottom, right)`` (fractions of the side) -> the regression targets."""
    top, left, bottom, right = corners.unbind(-1)
    return torch.stack([(top + bottom) / 2, (left + right) / 2, torch.log(bottom - top), torch.log(right - left)], -1)


def decode_boxes(encoded: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`: ``(N, 4)`` normalised ``(top, left, bottom, right)``."""
    centre, half_size = encoded[:, :2], encoded[:, 2:].exp() / 2
    return torch.cat([centre - half_size, centre + half_size], -1)


def generalized_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of matching rows of two ``(N, 4)`` ``(top, left, bottom, right)`` tensors: IoU - (C - U) / C, with C the
    area of the smallest box enclosing both and U their union; 1 for equal boxes, in (-1, 0] for disjoint ones."""
    shared = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - shared
    enclosing = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1)
    return shared / union - (enclosing - union) / enclosing


def flip_columns(images: torch.Tensor, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-right flip of ``(N, C, H, W)`` images and their encoded boxes (the centre column c becomes 1 - c)."""
    return images.flip(-1), encoded * torch.tensor([1.0, -1.0, 1.0, 1.0]) + torch.tensor([0.0, 1.0, 0.0, 0.0])


def flip_rows(images: torch.Tensor, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Up-down flip of ``(N, C, H, W)`` images and their encoded boxes (the centre row r becomes 1 - r)."""
    return images.flip(-2), encoded * torch.tensor([-1.0, 1.0, 1.0, 1.0]) + torch.tensor([1.0, 0.0, 0.0, 0.0])


def shift(images: torch.Tensor, encoded: torch.Tensor, rows: int, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Move ``(N, C, S, S)`` images by whole pixels (down / right positive, zero fill) and their boxes, clipped."""
    size = images.shape[-1]
    moved = torch.zeros_like(images)
    source = (slice(max(-rows, 0), size - max(rows, 0)), slice(max(-columns, 0), size - max(columns, 0)))
    moved[..., max(rows, 0) : size - max(-rows, 0), max(columns, 0) : size - max(-columns, 0)] = images[..., *source]
    corners = decode_boxes(encoded) + torch.tensor([rows, columns, rows, columns]) / size
    corners = corners.clamp(0, 1)
    corners[:, 2:] = torch.maximum(corners[:, 2:], corners[:, :2] + 1 / size)  # a box pushed out keeps one pixel
    return moved, encode_boxes(corners)


class BoxRegressor(nn.Module):
    """Whole slice ``(N, C, S, S)`` -> encoded box ``(N, 4)`` (see the module docstring)."""

    def __init__(self, config: RegressorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ResNetEncoder(config.encoder_depth, len(config.sequences) + 2, base_width=config.base_width)
        self.pool = nn.AdaptiveAvgPool2d(config.pooled_size)
        self.hidden = nn.Linear(self.encoder.channels[-1] * config.pooled_size**2, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows, columns = torch.meshgrid(
            torch.linspace(-1, 1, images.shape[-2]), torch.linspace(-1, 1, images.shape[-1]), indexing="ij"
        )
        coordinates = torch.stack([rows, columns]).expand(images.shape[0], -1, -1, -1)
        features = self.pool(self.encoder(torch.cat([images, coordinates], 1))[-1]).flatten(1)
        return self.output(torch.relu(self.hidden(features)))

    @torch.no_grad()
    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> list[Box]:
        """Boxes in pixels of ``images`` ``(N, C, H, W)`` (any H, W), clipped to the slice."""
        images = torch.as_tensor(images, dtype=torch.float32)
        height, width = images.shape[-2:]
        was_training = self.training
        self.eval()
        boxes = []
        for start in range(0, images.shape[0], batch_size):
            encoded = self(_resized(images[start : start + batch_size], self.config.input_size))
            # the centre inside the slice and the size at most the slice's: the box always overlaps the slice
            encoded = torch.cat([encoded[:, :2].clamp(0, 1), encoded[:, 2:].clamp(max=0)], 1)
            corners = decode_boxes(encoded) * torch.tensor([height, width, height, width])
            boxes += [Box(*row).clipped((height, width)) for row in corners.tolist()]
        self.train(was_training)
        return boxes


def _resized(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def slice_tensors(images: Sequence[np.ndarray], boxes: Sequence[Box], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Slices ``(C, H, W)`` and their pixel boxes -> resized images ``(N, C, size, size)`` and encoded boxes."""
    resized = torch.cat([_resized(torch.as_tensor(image, dtype=torch.float32)[None], size) for image in images])
    shapes = torch.tensor([image.shape[-2:] for image in images], dtype=torch.float32).repeat(1, 2)
    corners = torch.tensor([box.as_tuple() for box in boxes], dtype=torch.float32) / shapes
    return resized, encode_boxes(corners)


def fit_box_regressor(
    images: torch.Tensor,
    encoded: torch.Tensor,
    out: Path,
    config: RegressorConfig,
    *,
    record: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train a :class:`BoxRegressor` into a run folder (see the module docstring); returns ``out``.

    Args:
        images: training slices ``(N, C, S, S)``, S = ``config.input_size`` (see :func:`slice_tensors`).
        encoded: their encoded boxes ``(N, 4)``.
        out: run folder; one holding unfinished epochs is resumed after its last finished epoch.
        config: the settings.
        record: facts about the data (e.g. the training case ids) kept in ``run.json``; must match on a rerun.
        progress: log every epoch at INFO level (else DEBUG).

    Raises:
        ValueError: no slices, or ``out`` holds a run with other settings or another ``record``.
    """
    if len(images) == 0:
        raise ValueError(f"{out}: no training slices for the box regressor")
    out, record = Path(out), dict(record or {}, num_slices=int(images.shape[0]))
    checkpoint_path, run_path = out / CHECKPOINT_FILENAME, out / "run.json"
    if (out / "config.yaml").is_file():
        saved_config = config_to_dict(load_config(RegressorConfig, out / "config.yaml"))
        changes = config_differences(saved_config, config_to_dict(config))
        saved = json.loads(run_path.read_text())["record"] if run_path.is_file() else record
        changes += [f"{key}: {saved.get(key)} -> {record[key]}" for key in record if saved.get(key) != record[key]]
        if changes:
            raise ValueError(f"{out}: holds a box-regressor run with other settings ({'; '.join(changes)})")
    save_config(config, out / "config.yaml")
    atomic_write_text(run_path, json.dumps({"complete": False, "record": record}, indent=2))
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = BoxRegressor(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    log: list[dict[str, float]] = []
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        log = state["log"]
    else:
        with torch.no_grad():  # start at the mean box: early epochs refine it rather than find the scale
            model.output.bias.copy_(encoded.mean(0))
            model.output.weight.mul_(0.01)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or previous_threads)
    try:
        for epoch in range(len(log), config.epochs):
            started = time.monotonic()
            for group in optimiser.param_groups:
                group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
            model.train()
            sums = np.zeros(3)
            for batch_indices in torch.randperm(len(images), generator=generator).split(config.batch_size):
                batch, targets = _augmented(images[batch_indices], encoded[batch_indices], config, generator)
                predicted = model(batch)
                giou = generalized_iou(decode_boxes(predicted), decode_boxes(targets))
                l1 = (predicted - targets).abs().sum(1)
                loss = (config.l1_weight * l1 + config.giou_weight * (1 - giou)).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                sums += np.array([loss.item(), l1.mean().item(), giou.mean().item()]) * len(batch)
            loss_mean, l1_mean, giou_mean = (float(value) for value in sums / len(images))
            seconds = time.monotonic() - started
            log.append({"epoch": epoch + 1, "loss": loss_mean, "l1": l1_mean, "giou": giou_mean, "seconds": seconds})
            state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "log": log}
            with atomic_path(checkpoint_path) as temporary:
                torch.save({**state, "generator": generator.get_state()}, temporary)
            lines = [",".join(log[0]), *(",".join(f"{value:.6g}" for value in row.values()) for row in log)]
            atomic_write_text(out / "log.csv", "\n".join(lines) + "\n")
            (logger.info if progress else logger.debug)(
                "box regressor epoch %d/%d: loss %.4f, GIoU %.3f", epoch + 1, config.epochs, loss_mean, giou_mean
            )
    finally:
        torch.set_num_threads(previous_threads)
    summary = {"complete": True, "epochs": len(log), "final_loss": log[-1]["loss"], "record": record}
    atomic_write_text(run_path, json.dumps(summary, indent=2))
    return out


def _augmented(
    images: torch.Tensor, encoded: torch.Tensor, config: RegressorConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A copy of the batch with random flips and shifts (config), drawn slice by slice from ``generator``."""
    images, encoded = images.clone(), encoded.clone()
    limit = round(config.max_shift * images.shape[-1])
    for index in range(images.shape[0]):
        image, box = images[index : index + 1], encoded[index : index + 1]
        draws = torch.rand(2, generator=generator)
        shifts = torch.randint(-limit, limit + 1, (2,), generator=generator).tolist()
        if config.flip_columns and draws[0] < 0.5:
            image, box = flip_columns(image, box)
        if config.flip_rows and draws[1] < 0.5:
            image, box = flip_rows(image, box)
        if limit:
            image, box = shift(image, box, *shifts)
        images[index : index + 1], encoded[index : index + 1] = image, box
    return images, encoded


def train_box_regressor(
    cache: Path, train_ids: Sequence[str], out: Path, config: RegressorConfig, *, progress: bool = True
) -> Path:
    """Train the box regressor on the tumour slices of ``train_ids`` in ``cache`` into run folder ``out``."""
    slices = detection_slices(Path(cache), list(train_ids), config.sequences, tumour_only=True)
    if not slices:
        raise ValueError(f"{cache}: the training cases {list(train_ids)} have no tumour slices")
    boxes = [item.target for item in slices if item.target is not None]
    images, encoded = slice_tensors([item.image for item in slices], boxes, config.input_size)
    # the cache's settings, not its path: the same cache named by another path (relative, a link) is the same run
    record = {"preprocessing": config_to_dict(load_cache_config(Path(cache))), "train_ids": sorted(train_ids)}
    return fit_box_regressor(images, encoded, Path(out), config, record=record, progress=progress)


def load_box_regressor(run_dir: Path) -> BoxRegressor:
    """The trained regressor of ``run_dir`` in eval mode (use ``.predict``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no box-regressor run here (run.json missing)")
    if not json.loads((run_dir / "run.json").read_text()).get("complete"):
        raise ValueError(f"{run_dir}: the box-regressor run is unfinished; rerun the training to resume it")
    model = BoxRegressor(load_config(RegressorConfig, run_dir / "config.yaml"))
    model.load_state_dict(torch.load(run_dir / CHECKPOINT_FILENAME, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def run_regressor_baseline(
    cache: Path, train_ids: Sequence[str], test_ids: Sequence[str], out: Path, config: RegressorConfig
) -> DetectionSummary:
    """Train (unless done) into ``out/model``, predict the tumour slices of ``test_ids`` and score them: writes
    ``out/detection_slices.csv`` and ``out/detection_summary.json`` (:func:`.scores.write_slice_scores`)."""
    run_dir = train_box_regressor(cache, train_ids, Path(out) / "model", config)  # returns at once when finished
    model = load_box_regressor(run_dir)
    slices = detection_slices(Path(cache), list(test_ids), config.sequences, tumour_only=True)
    predicted = [model.predict(item.image[None])[0] for item in slices]  # one by one: slices may differ in size
    extra = {"method": "box regressor", "run": str(run_dir), "train_ids": list(train_ids), "test_ids": list(test_ids)}
    return write_slice_scores(Path(out), slices, predicted, extra=extra)
