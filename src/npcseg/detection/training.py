"""Training the deep-Q-learning box detector (SeqSeg instance level; METHODS.md, method 2, Algorithms 1-3).

An epoch is one episode per tumour slice of the training cases, in an order shuffled by the run's generator. In each
step the agent picks an action by Algorithm 3 (prior-knowledge action with probability ``eps_priori``, else random
with probability ``eps``, else greedy; both from ``config.exploration.at_epoch(epoch)``), the transition goes into
the replay, and ``config.updates_per_step`` optimiser steps follow (once the replay holds a batch). One numpy
generator seeded by ``config.seed`` drives the episode order, the exploration and the replay batches; the backbone
and the Q-network are initialised from the same seed, so a run is a function of its config and data.

After every epoch: a greedy episode on every validation tumour slice (when validation cases are given; nothing is
selected on it, the final weights are the result), a row of ``log.csv`` and ``checkpoint_last.pt`` (written
atomically; agent with its replay, epochs done, generator state, the log). A rerun resumes from that checkpoint and
ends with the same weights as an uninterrupted run. After the last epoch: ``detector.pt``. The run folder is
described in :mod:`npcseg.detection.run_folder`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from npcseg.detection.agent import DQNAgent
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import BoxEnv, detection_slices
from npcseg.detection.features import build_backbone
from npcseg.detection.inference import detector_payload, greedy_episode
from npcseg.detection.run_folder import (
    DETECTOR_FILENAME,
    LAST_CHECKPOINT_FILENAME,
    claim_detector_run,
    finish_run,
    start_session,
    write_log,
)
from npcseg.detection.scores import score_boxes
from npcseg.training.cases import check_disjoint_ids
from npcseg.training.checkpoint import load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorRunResult:
    """What :func:`train_detector` did.

    Attributes:
        run_dir: the run folder.
        num_epochs: epochs the run has finished in all (``config.epochs``).
        epochs_trained: epochs trained by this call (0 when the run was already complete).
        resumed: whether this call continued from a checkpoint.
        already_complete: whether the run was complete before this call.
        seconds: wall seconds of this call's training.
        num_train_slices / num_val_slices: tumour slices trained / validated on.
        cache_hit_rate: fraction of this call's training crop-feature look-ups answered from the cache (nan if none).
        log: every epoch's ``log.csv`` row.
    """

    run_dir: Path
    num_epochs: int
    epochs_trained: int
    resumed: bool
    already_complete: bool
    seconds: float
    num_train_slices: int
    num_val_slices: int
    cache_hit_rate: float
    log: tuple[dict[str, float], ...]


@contextlib.contextmanager
def _threads(num_threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, completed: int) -> Iterator[tuple[Any, Any]]:
    """A rich progress bar over the run's episodes; ``(bar, task)``; draws nothing when disabled."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("detector epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("recall {task.fields[recall]:.3f}"),
        TextColumn("val recall {task.fields[val_recall]:.3f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task(
            "episodes", total=total, completed=completed, epoch=1, loss=math.nan, recall=math.nan, val_recall=math.nan
        )
        yield bar, task


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _run_epoch(
    env: BoxEnv, agent: DQNAgent, config: DetectorConfig, epoch: int, rng: np.random.Generator, bar: Any, task: Any
) -> dict[str, float]:
    """One epoch of training episodes; returns its log row (without timing and validation)."""
    eps_priori, eps = config.exploration.at_epoch(epoch)
    hits_before, misses_before = env.cache_counts
    losses: list[float] = []
    rewards: list[float] = []
    ious: list[float] = []
    recalls: list[float] = []
    for index in rng.permutation(len(env.slices)):
        state, info = env.reset(options={"index": int(index)})
        total, done = 0.0, False
        while not done:
            action, _ = agent.choose(state, env.prior_action(), eps_priori, eps, rng)
            next_state, value, terminated, truncated, info = env.step(action)
            judged = terminated or (truncated and config.reward.judge_step_limit)  # no bootstrap past a judged box
            agent.replay.add(state, action, value, next_state, judged)
            for _ in range(config.updates_per_step):
                loss = agent.update(rng)
                if loss is not None:
                    losses.append(loss)
            total += value
            state, done = next_state, terminated or truncated
        rewards.append(total)
        ious.append(info["iou"])
        recalls.append(info["recall"])
        bar.update(task, advance=1, epoch=epoch + 1, loss=_mean(losses[-200:]), recall=_mean(recalls))
    hits, misses = env.cache_counts
    lookups = (hits - hits_before) + (misses - misses_before)
    return {
        "epoch": epoch,
        "loss": _mean(losses),
        "reward": _mean(rewards),
        "train_iou": _mean(ious),
        "train_recall": _mean(recalls),
        "eps_priori": eps_priori,
        "eps": eps,
        "num_updates": float(len(losses)),
        "cache_hit_rate": (hits - hits_before) / lookups if lookups else math.nan,
    }


def _validate(env: BoxEnv | None, agent: DQNAgent) -> dict[str, float]:
    """Greedy validation recall / IoU (mean, min) of every validation slice; nan without validation slices."""
    if env is None:
        return {
            "val_recall_mean": math.nan,
            "val_recall_min": math.nan,
            "val_iou_mean": math.nan,
            "val_iou_min": math.nan,
        }
    boxes = [greedy_episode(env, agent.greedy, index).box for index in range(len(env.slices))]
    summary = score_boxes(boxes, [item.target for item in env.slices if item.target is not None])
    return {
        "val_recall_mean": summary.recall_mean,
        "val_recall_min": summary.recall_min,
        "val_iou_mean": summary.iou_mean,
        "val_iou_min": summary.iou_min,
    }


def train_detector(
    cache: Path,
    train_ids: Sequence[str],
    out: Path,
    config: DetectorConfig,
    *,
    val_ids: Sequence[str] = (),
    progress: bool = True,
) -> DetectorRunResult:
    """Train the box detector on the tumour slices of ``train_ids`` into the run folder ``out`` (resumable).

    Args:
        cache: the preprocessed cache (``npcseg preprocess`` output) holding the cases.
        train_ids: training cases (labelled; their tumour slices are the episodes).
        out: the run folder (created; a rerun resumes, a finished run is kept; see :mod:`.run_folder`).
        config: the detector settings.
        val_ids: cases whose tumour slices get a greedy episode after every epoch (logged, not selected on).
        progress: show a rich progress bar of the episodes.

    Raises:
        ValueError: no or overlapping case ids, no tumour slice, a case without label, a sequence missing from the
            cache, or a run folder holding another run.
        FileNotFoundError: the cache or a case is missing.
    """
    out, cache = Path(out), Path(cache)
    check_disjoint_ids(train_ids, val_ids)
    train_slices = detection_slices(cache, train_ids, config.sequences)
    if not train_slices:
        raise ValueError(f"{cache}: the training cases {list(train_ids)} have no tumour slice")
    val_slices = detection_slices(cache, val_ids, config.sequences) if val_ids else []
    claim_detector_run(out, cache, config, train_ids, val_ids)
    last_path = out / LAST_CHECKPOINT_FILENAME
    checkpoint = load_checkpoint(last_path) if last_path.is_file() else None
    done_epochs = int(checkpoint["epoch"]) if checkpoint is not None else 0
    if done_epochs > config.epochs:
        raise ValueError(f"{out}: the run has already trained {done_epochs} epochs, more than epochs={config.epochs}")
    log: list[dict[str, float]] = list(checkpoint["log"]) if checkpoint is not None else []

    def result(epochs_trained: int, seconds: float, hit_rate: float) -> DetectorRunResult:
        return DetectorRunResult(
            run_dir=out,
            num_epochs=config.epochs,
            epochs_trained=epochs_trained,
            resumed=checkpoint is not None and epochs_trained > 0,
            already_complete=epochs_trained == 0,
            seconds=seconds,
            num_train_slices=len(train_slices),
            num_val_slices=len(val_slices),
            cache_hit_rate=hit_rate,
            log=tuple(log),
        )

    if done_epochs == config.epochs and (out / DETECTOR_FILENAME).is_file():
        logger.info("%s: detector run already complete (%d epochs)", out, done_epochs)
        return result(0, 0.0, math.nan)
    (out / DETECTOR_FILENAME).unlink(missing_ok=True)  # more epochs asked of a finished run: it is no longer final

    with _threads(config.num_threads):
        backbone = build_backbone(config, len(config.sequences), base_width=config.backbone_width)
        env = BoxEnv(train_slices, backbone, config)
        val_env = BoxEnv(val_slices, backbone, config) if val_slices else None
        agent = DQNAgent(config, env.state_size)
        rng = np.random.default_rng(config.seed)
        if checkpoint is not None:
            agent.load_state_dict(checkpoint["agent"])
            rng.bit_generator.state = json.loads(checkpoint["generator"])
        start_session(
            out, num_train_slices=len(train_slices), num_val_slices=len(val_slices), state_size=env.state_size
        )
        started = time.perf_counter()
        total = config.epochs * len(train_slices)
        with _progress_bar(progress, total, done_epochs * len(train_slices)) as (bar, task):
            for epoch in range(done_epochs, config.epochs):
                epoch_started = time.perf_counter()
                row = _run_epoch(env, agent, config, epoch, rng, bar, task)
                row.update(_validate(val_env, agent))
                row["seconds"] = time.perf_counter() - epoch_started
                log.append(row)
                bar.update(task, val_recall=row["val_recall_mean"])
                generator = json.dumps(rng.bit_generator.state)  # a string: PCG64's 128-bit words are not tensors
                payload = {"agent": agent.state_dict(), "epoch": epoch + 1, "generator": generator, "log": log}
                save_checkpoint(payload, last_path)
                write_log(out, log)
                logger.info(
                    "epoch %d: loss %.4f, train recall %.3f, val recall %.3f, %.1f s",
                    epoch + 1,
                    row["loss"],
                    row["train_recall"],
                    row["val_recall_mean"],
                    row["seconds"],
                )
        seconds = time.perf_counter() - started
        hits, misses = env.cache_counts
        hit_rate = hits / (hits + misses) if hits + misses else math.nan
        save_checkpoint(detector_payload(config, backbone, agent.q, epochs=config.epochs), out / DETECTOR_FILENAME)
    finish_run(
        out,
        timings={"last_session_seconds": seconds, "seconds_per_epoch": seconds / max(config.epochs - done_epochs, 1)},
        feature_cache={"hits": hits, "misses": misses, "hit_rate": hit_rate},
        result={key: log[-1][key] for key in ("loss", "train_recall", "train_iou", "val_recall_mean", "val_iou_mean")},
    )
    return result(config.epochs - done_epochs, seconds, hit_rate)
