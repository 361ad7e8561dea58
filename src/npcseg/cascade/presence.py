"""The tumour-present decision per slice, so the cascade runs on every slice of a patient (SeqSeg, cascade).

The paper runs its detector on tumour slices only ("semi-automatic"). To run fully automatically, a small CNN
classifier says per slice whether it holds tumour; the detector and the segmenter run only on slices said to hold
tumour, so a tumour-free slice gets no box and no mask.

Classifier (ours): a ResNet encoder (:class:`~npcseg.models.resnet.ResNetEncoder`, narrow) on the whole slice resized
to ``input_size``, global average pooling of its deepest level, one linear unit -> logit. Trained with binary
cross-entropy and Adam on batches drawn half from tumour slices and half from tumour-free ones (the classes are
unbalanced), each slice mirrored left-right with probability 1/2. The epoch kept (``checkpoint_best.pt``) is the one
with the best balanced accuracy (mean of sensitivity and specificity) on the validation cases, or the last epoch
without validation cases. Resumable at epoch ends; batch draws and flips derive from ``(seed, epoch)``.

Decision (:func:`presence_decisions`): probability >= threshold, then along z (the tumour is one contiguous run of
slices): a negative slice between two positive ones becomes positive (``fill_gaps``), then every run of fewer than
``min_run`` consecutive positive slices is dropped (so with ``min_run=2`` a slice is kept only if a neighbour is also
positive, the rule of the 3D post-processing that drops single-slice components).

Run folder: ``config.yaml`` (:class:`PresenceConfig`), ``preprocessing.yaml`` (the training cache's, so raw cases can
be pre-processed alike), ``checkpoint_last.pt``, ``checkpoint_best.pt``, ``log.csv``, ``run.json`` (status, case ids,
result).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from npcseg.config import load_config
from npcseg.data.dataset import channel_indices
from npcseg.io.atomic import atomic_write_text
from npcseg.models.resnet import ResNetEncoder
from npcseg.preprocessing.cache import load_cache_config, load_preprocessed
from npcseg.training.checkpoint import load_checkpoint, save_checkpoint
from npcseg.training.run_folder import claim_run_folder, update_run_record

logger = logging.getLogger(__name__)

BEST, LAST, LOG, RUN = "checkpoint_best.pt", "checkpoint_last.pt", "log.csv", "run.json"


@dataclass(frozen=True)
class PresenceConfig:
    """Settings of the tumour-present slice classifier (all ours; the paper has no such step)."""

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    """Input channels, picked by name from the preprocessed cache."""
    encoder_depth: int = 18
    """ResNet depth of the encoder (18, 34 or 50)."""
    base_width: int = 8
    """Channels of the encoder's first level (64 in torchvision; narrow for CPU)."""
    input_size: int = 64
    """Side in pixels each slice is resized to (bilinear, antialiased); a multiple of 32."""
    epochs: int = 10
    """Training epochs."""
    steps_per_epoch: int = 40
    """Optimiser steps per epoch."""
    batch_size: int = 16
    """Slices per step: half tumour, half tumour-free (when both kinds exist)."""
    learning_rate: float = 1e-3
    """Adam's learning rate."""
    weight_decay: float = 1e-4
    """Adam's L2 weight decay."""
    flip: bool = True
    """Mirror each training slice left-right with probability 1/2."""
    seed: int = 0
    """Seed of the initialisation, the batch draws and the flips."""
    num_threads: int = 0
    """CPU threads for torch while training; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        if (
            self.encoder_depth not in (18, 34, 50)
            or self.base_width < 1
            or self.input_size % 32
            or self.input_size < 32
        ):
            raise ValueError("encoder_depth must be 18/34/50, base_width >= 1, input_size a positive multiple of 32")
        if min(self.epochs, self.steps_per_epoch, self.batch_size) < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, steps_per_epoch, batch_size must be >= 1 and learning_rate positive")


class PresenceNetwork(nn.Module):
    """ResNet encoder + global average pooling + one linear unit: a tumour-present logit per slice."""

    def __init__(self, config: PresenceConfig) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(config.encoder_depth, len(config.sequences), base_width=config.base_width)
        self.head = nn.Linear(self.encoder.channels[-1], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` of slices ``(B, C, S, S)``."""
        deepest = self.encoder(images)[-1]
        return self.head(deepest.mean(dim=(2, 3)))[:, 0]


def resize_slices(slices: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W)`` slices resized to ``(N, C, size, size)`` float32 (bilinear, antialiased)."""
    tensor = torch.as_tensor(np.asarray(slices, dtype=np.float32))
    if tensor.shape[-2:] == (size, size):
        return tensor
    return functional.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@dataclass(frozen=True)
class PresenceScores:
    """Slice-level scores of presence decisions: accuracy, sensitivity (tumour slices called positive),
    specificity (tumour-free slices called negative); nan when a class has no slice."""

    accuracy: float
    sensitivity: float
    specificity: float
    num_slices: int
    num_tumour_slices: int

    @property
    def balanced_accuracy(self) -> float:
        return (self.sensitivity + self.specificity) / 2


def presence_scores(predicted: np.ndarray, truth: np.ndarray) -> PresenceScores:
    """Scores of boolean decisions ``predicted`` against boolean ``truth`` (same shape, any number of slices)."""
    predicted, truth = np.asarray(predicted, dtype=bool).ravel(), np.asarray(truth, dtype=bool).ravel()
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} differ in shape")
    positives, negatives = int(truth.sum()), int((~truth).sum())
    return PresenceScores(
        accuracy=float((predicted == truth).mean()) if truth.size else math.nan,
        sensitivity=float((predicted & truth).sum() / positives) if positives else math.nan,
        specificity=float((~predicted & ~truth).sum() / negatives) if negatives else math.nan,
        num_slices=int(truth.size),
        num_tumour_slices=positives,
    )


def presence_decisions(
    probabilities: np.ndarray, threshold: float = 0.5, *, fill_gaps: bool = True, min_run: int = 2
) -> np.ndarray:
    """Boolean ``(Z,)`` decisions from per-slice probabilities (see the module docstring for the z rules)."""
    positive = np.asarray(probabilities, dtype=np.float64) >= threshold
    if fill_gaps and positive.size >= 3:
        gaps = ~positive[1:-1] & positive[:-2] & positive[2:]
        positive[1:-1] |= gaps
    if min_run > 1:
        edges = np.diff(np.concatenate([[0], positive.astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if stop - start < min_run:
                positive[start:stop] = False
    return positive


class PresenceClassifier:
    """A trained classifier: :meth:`probabilities` per slice of a volume whose channels are ``sequences``."""

    def __init__(self, network: PresenceNetwork, config: PresenceConfig, batch_size: int = 32) -> None:
        self.network = network.eval()
        self.config = config
        self.sequences = tuple(config.sequences)
        self.batch_size = batch_size

    @torch.inference_mode()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Tumour-present probabilities ``(Z,)`` float64 of ``image`` ``(C, Z, H, W)`` (channels = ``sequences``)."""
        slices = np.asarray(image, dtype=np.float32).transpose(1, 0, 2, 3)
        outputs = [
            torch.sigmoid(self.network(resize_slices(slices[start : start + self.batch_size], self.config.input_size)))
            for start in range(0, slices.shape[0], self.batch_size)
        ]
        return torch.cat(outputs).double().numpy() if outputs else np.zeros(0)


def load_presence(run_dir: Path) -> PresenceClassifier:
    """The classifier of a presence run folder (``checkpoint_best.pt``, loaded with ``weights_only=True``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / BEST).is_file():
        raise FileNotFoundError(f"{run_dir}: not a finished presence classifier run (config.yaml, {BEST})")
    config = load_config(PresenceConfig, run_dir / "config.yaml")
    network = PresenceNetwork(config)
    network.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    return PresenceClassifier(network, config)


def _load_slices(cache: Path, case_ids: Sequence[str], config: PresenceConfig) -> tuple[torch.Tensor, np.ndarray]:
    """Every slice of the cases resized, ``(N, C, S, S)``, and whether each holds tumour ``(N,)``."""
    indices = channel_indices(load_cache_config(cache).sequences, config.sequences, cache)
    images, present = [], []
    for case_id in case_ids:
        case = load_preprocessed(cache, case_id)
        if case.label is None:
            raise ValueError(f"{cache}: case {case_id!r} has no label; it cannot train the presence classifier")
        images.append(resize_slices(case.image[indices].transpose(1, 0, 2, 3), config.input_size))
        present.append(case.label.reshape(case.label.shape[0], -1).any(axis=1))
    return torch.cat(images), np.concatenate(present)


def _batch(rng: np.random.Generator, present: np.ndarray, size: int) -> np.ndarray:
    """Slice indices of one balanced batch (half tumour, half tumour-free; one kind only if the other is absent)."""
    tumour, free = np.flatnonzero(present), np.flatnonzero(~present)
    if tumour.size == 0 or free.size == 0:
        return rng.choice(tumour if tumour.size else free, size=size)
    half = size // 2
    return np.concatenate([rng.choice(tumour, size=size - half), rng.choice(free, size=half)])


def train_presence(
    cache: Path,
    train_ids: Sequence[str],
    out: Path,
    config: PresenceConfig,
    *,
    val_ids: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train the presence classifier on the slices of ``train_ids`` (resumable; see the module docstring).

    Returns:
        ``run.json``'s content: ``status``, case ids, ``result`` (``best_epoch``, validation ``accuracy`` /
        ``sensitivity`` / ``specificity`` of that epoch at threshold 0.5, ``seconds``).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    cache, out = Path(cache), Path(out)
    record = claim_run_folder(
        out, cache, config, list(train_ids), list(val_ids), what="presence run", record={"kind": "presence"}
    )
    if record["status"] == "complete":
        return record
    previous_threads = torch.get_num_threads()
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    try:
        torch.manual_seed(config.seed)
        network = PresenceNetwork(config)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        images, present = _load_slices(cache, list(train_ids), config)
        validation = _load_slices(cache, list(val_ids), config) if val_ids else None
        state: dict[str, Any] = {"epoch": 0, "best_score": -math.inf, "log": [], "seconds": 0.0}
        if (out / LAST).is_file():
            payload = load_checkpoint(out / LAST)
            network.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            state = payload["state"]
        columns = (TextColumn("presence classifier"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("epochs", total=config.epochs, completed=state["epoch"])
            while state["epoch"] < config.epochs:
                started = time.perf_counter()
                loss = _train_epoch(network, optimizer, images, present, config, state["epoch"])
                row: dict[str, float] = {"epoch": state["epoch"] + 1, "train_loss": loss}
                if validation is not None:
                    decisions = PresenceClassifier(network, config).probabilities(
                        validation[0].numpy().transpose(1, 0, 2, 3)
                    )
                    network.train()
                    scores = presence_scores(decisions >= 0.5, validation[1])
                    row.update(accuracy=scores.accuracy, sensitivity=scores.sensitivity, specificity=scores.specificity)
                    score = np.nan_to_num(scores.balanced_accuracy, nan=scores.accuracy)
                else:
                    score = float(state["epoch"])  # no validation: the last epoch is the best
                state["seconds"] += time.perf_counter() - started
                state["log"].append(row)
                state["epoch"] += 1
                if score > state["best_score"]:
                    state["best_score"], state["best"] = float(score), row
                    save_checkpoint({"model": network.state_dict(), "epoch": state["epoch"]}, out / BEST)
                save_checkpoint(
                    {"model": network.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, out / LAST
                )
                bar.advance(task)
    finally:
        torch.set_num_threads(previous_threads)
    _write_log(out, state["log"])
    result = {**state["best"], "best_epoch": state["best"]["epoch"], "seconds": state["seconds"]}
    return update_run_record(out, status="complete", result=result)


def _train_epoch(
    network: PresenceNetwork,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    present: np.ndarray,
    config: PresenceConfig,
    epoch: int,
) -> float:
    """One epoch of balanced, flipped batches; the mean training loss."""
    rng = np.random.default_rng([config.seed, epoch])
    targets_all = torch.from_numpy(present.astype(np.float32))
    network.train()
    total = 0.0
    for _ in range(config.steps_per_epoch):
        indices = torch.from_numpy(_batch(rng, present, config.batch_size))
        batch = images[indices]
        if config.flip:
            flips = torch.from_numpy(rng.random(len(indices)) < 0.5)
            batch = torch.where(flips[:, None, None, None], torch.flip(batch, dims=(-1,)), batch)
        loss = functional.binary_cross_entropy_with_logits(network(batch), targets_all[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / config.steps_per_epoch


def _write_log(out: Path, rows: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [",".join(columns), *(",".join(repr(float(row.get(key, math.nan))) for key in columns) for row in rows)]
    atomic_write_text(out / LOG, "\n".join(lines) + "\n")
