"""Training of one network on a preprocessed cache, resumable (METHODS.md method 1, Training).

``train`` fits the configured network to the training cases' slices with the configured loss (Dice) and Adam (at
``config.learning_rate_at(epoch)``, set at every epoch start: constant, or SeqSeg's step drop), validates on whole
validation cases after every epoch (:mod:`npcseg.training.validation`), and keeps the run folder (see the DEU
notes)::

    RUN/config.yaml  preprocessing.yaml  checkpoint_last.pt  checkpoint_best.pt  log.csv  run.json

Resuming. ``checkpoint_last.pt`` is written every ``checkpoint_every_steps`` optimiser steps and at every epoch
end. It holds the weights, Adam's state, the epoch and step counters, the sampler's position inside the epoch's
slice order, the augmentation generator's state, the global random states, the partial sums of the epoch's
training loss and the log so far. Rerunning ``train`` on the same folder loads it and continues with the very
next batch: the same slices, the same augmentations, hence (on the same machine and thread count) the same final
weights and the same number of optimiser steps as a run never interrupted. A rerun with another config, other
case ids or a cache built with another preprocessing config is refused; a finished run is reported, not retrained.

Determinism: the weights' initialisation, the slice order and the augmentation derive from ``config.seed``;
``torch.use_deterministic_algorithms`` is on while training (warn-only where an operation has no deterministic
kernel); the thread count is ``config.num_threads``. Global torch settings are restored on return.

Data-parallel training (several processes, ``DistributedDataParallel``) runs this same loop in every worker with
a :class:`npcseg.training.data_parallel.DistributedContext`: ``config.batch_size`` is then the global batch, split
over the ranks, and only rank 0 writes the run folder (see :mod:`npcseg.training.distributed`).

Code layout: the train / validation case ids and their checks are in :mod:`npcseg.training.cases`; one optimiser step
(single-process or data-parallel) in :mod:`npcseg.training.data_parallel`; the run's counters and the end of an
epoch (validation, ``log.csv``, ``checkpoint_best.pt``) in :mod:`npcseg.training.epoch_end`; the progress bar in
:mod:`npcseg.training.progress_bar`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from npcseg.data.dataset import SliceDataset, SliceSampler
from npcseg.training.cases import check_cases
from npcseg.training.checkpoint import (
    LAST_FILENAME,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from npcseg.training.config import TrainingConfig
from npcseg.training.data_parallel import DistributedContext, OnDevice, batch_share, training_step, wrap_model
from npcseg.training.epoch_end import RunProgress, end_epoch
from npcseg.training.progress_bar import progress_bar
from npcseg.training.run_folder import LOG_FILENAME, claim_run, finish_run, read_run_record, start_session

logger = logging.getLogger(__name__)

__all__ = ["LOG_FILENAME", "TrainResult", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        run_dir: the run folder.
        already_complete: the run had finished before this call; nothing was trained.
        resumed: this call continued an interrupted run from ``checkpoint_last.pt``.
        num_epochs: epochs completed.
        num_steps: optimiser steps taken in the whole run (all sessions).
        best_epoch: the (1-based) epoch of ``checkpoint_best.pt``.
        best_val_dice: its mean validation Dice (nan without validation cases).
        seconds: training time of the whole run (all sessions), validation included.
    """

    run_dir: Path
    already_complete: bool
    resumed: bool
    num_epochs: int
    num_steps: int
    best_epoch: int
    best_val_dice: float
    seconds: float


@contextlib.contextmanager
def _torch_settings(num_threads: int) -> Iterator[None]:
    """Deterministic algorithms and the thread count while training; the previous settings afterwards."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)


def train(
    cache: Path,
    run_dir: Path,
    config: TrainingConfig,
    train_ids: list[str],
    val_ids: list[str],
    progress: bool = True,
    *,
    distributed: DistributedContext | None = None,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``config.model`` on the cached ``train_ids``, validating on ``val_ids``; resumable.

    Args:
        cache: preprocessed cache folder (``npcseg preprocess`` output); never modified.
        run_dir: run folder, created; an existing one of the same run is resumed or reported complete.
        config: the training settings (saved as ``config.yaml``).
        train_ids: training case ids (labelled, in the cache).
        val_ids: validation case ids (may be empty: no validation, ``checkpoint_best.pt`` is the last epoch's).
        progress: show a rich progress bar (loss, last validation Dice).
        distributed: this worker's place in a data-parallel run (an initialised process group; see
            :mod:`npcseg.training.distributed`), or ``None`` for single-process training.
        device: where the network runs (default: the CPU; ``distributed.device`` in a data-parallel run).

    Returns:
        A :class:`TrainResult`.

    Raises:
        FileNotFoundError: the cache is missing.
        ValueError: unknown / unlabelled cases, a sequence missing from the cache, or a run folder holding a run
            with another config, other case ids or another preprocessing config.
    """
    cache, run_dir = Path(cache), Path(run_dir)
    train_ids, val_ids = list(train_ids), list(val_ids)
    check_cases(cache, train_ids, val_ids, config)
    if distributed is None or distributed.is_main:
        claim_run(run_dir, cache, config, train_ids, val_ids)
    if distributed is not None:
        distributed.barrier()  # rank 0 has claimed (or checked) the folder
    if read_run_record(run_dir).get("status") == "complete":
        logger.info("%s: run already complete, not retrained", run_dir)
        return train_result(run_dir, already_complete=True, resumed=False)
    from npcseg.training.distributed import threads_per_process

    target = distributed.device if distributed is not None else torch.device(device or "cpu")
    threads = threads_per_process(distributed.world_size, config.num_threads) if distributed else config.num_threads
    with _torch_settings(threads):
        return _train(cache, run_dir, config, train_ids, val_ids, progress, distributed, target)


def train_result(run_dir: Path, *, already_complete: bool, resumed: bool) -> TrainResult:
    """The :class:`TrainResult` of a finished run folder (read from its ``run.json``)."""
    summary = read_run_record(run_dir)["result"]
    return TrainResult(
        run_dir=run_dir,
        already_complete=already_complete,
        resumed=resumed,
        num_epochs=int(summary["num_epochs"]),
        num_steps=int(summary["num_steps"]),
        best_epoch=int(summary["best_epoch"]),
        best_val_dice=float(summary["best_val_dice"]) if summary["best_val_dice"] is not None else math.nan,
        seconds=float(summary["seconds"]),
    )


def _train(
    cache: Path,
    run_dir: Path,
    config: TrainingConfig,
    train_ids: list[str],
    val_ids: list[str],
    progress: bool,
    distributed: DistributedContext | None,
    device: torch.device,
) -> TrainResult:
    from npcseg.losses import build_loss
    from npcseg.models import build_model

    session_start = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    torch.manual_seed(config.seed)
    network = build_model(config.model, config.model_config()).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    loss_function = build_loss(config.loss, **config.loss_options)
    train_data = SliceDataset(cache, train_ids, config.sequences)
    val_data = SliceDataset(cache, val_ids, config.sequences) if val_ids else None
    sampler = SliceSampler(
        train_data.has_tumour,
        tumour_fraction=config.tumour_oversampling,
        max_slices_per_epoch=config.max_slices_per_epoch,
        seed=config.seed,
    )
    generator = torch.Generator().manual_seed(config.seed)
    state = RunProgress(history=[])
    last_path = run_dir / LAST_FILENAME
    resumed = last_path.is_file()
    if resumed:
        payload = load_checkpoint(last_path)
        network.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        sampler.load_state_dict(payload["sampler_state"])
        generator.set_state(payload["augmentation_rng"])
        restore_rng_state(payload["rng"])
        state = RunProgress(**payload["progress"])
        logger.info("%s: resuming at epoch %d, step %d", run_dir, state.epoch + 1, state.step)
    else:
        sampler.set_epoch(0)
    assert state.history is not None
    is_main = distributed is None or distributed.is_main
    if is_main:
        start_session(
            run_dir,
            model_parameters=sum(parameter.numel() for parameter in network.parameters()),
            num_train_slices=len(train_data),
            num_train_tumour_slices=train_data.num_tumour_slices,
            num_val_slices=len(val_data) if val_data is not None else 0,
            num_processes=distributed.world_size if distributed is not None else 1,
            device=str(device),
        )
    model = wrap_model(network, distributed) if distributed is not None else network
    validated = network if device.type == "cpu" else OnDevice(network, device)

    def save_last() -> None:
        if not is_main:
            return
        save_checkpoint(
            {
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": state.epoch,
                "step": state.step,
                "best_score": state.best_score,
                "progress": state.to_dict(),
                "sampler_state": sampler.state_dict(),
                "augmentation_rng": generator.get_state(),
                "rng": capture_rng_state(),
                "model_name": config.model,
                "model_config": config.model_config_dict(),
            },
            last_path,
        )

    steps_per_epoch = -(-sampler.num_draws // config.batch_size)
    done_steps = state.epoch * steps_per_epoch + -(-sampler.position // config.batch_size)
    with progress_bar(progress and is_main, config.epochs * steps_per_epoch, done_steps) as (bar, task):
        while state.epoch < config.epochs:
            if sampler.epoch != state.epoch:
                sampler.set_epoch(state.epoch)
            for group in optimizer.param_groups:  # the step schedule; a resumed epoch gets its own rate too
                group["lr"] = config.learning_rate_at(state.epoch)
            model.train()
            while not sampler.is_epoch_done:
                started = time.perf_counter()
                indices = sampler.next_indices(config.batch_size)
                positions = distributed.shard(len(indices)) if distributed is not None else list(range(len(indices)))
                images, labels = batch_share(train_data, indices, positions or [0], config.augmentation, generator)
                loss_value = training_step(
                    model,
                    optimizer,
                    loss_function,
                    images.to(device),
                    labels.to(device),
                    global_batch_size=len(indices),
                    num_own=len(positions),
                    context=distributed,
                )
                state.step += 1
                state.epoch_loss_sum += loss_value
                state.epoch_num_batches += 1
                state.num_slices += len(indices)
                step_seconds = time.perf_counter() - started
                state.epoch_seconds += step_seconds
                state.step_seconds += step_seconds
                bar.update(task, advance=1, loss=loss_value, epoch=state.epoch + 1)
                every = config.checkpoint_every_steps
                if every and state.step % every == 0 and not sampler.is_epoch_done:
                    save_last()
            if is_main:
                end_epoch(run_dir, config, validated, loss_function, val_data, state)
                bar.update(task, val_dice=state.history[-1]["val_dice"])
            if distributed is not None:
                distributed.barrier()  # the other ranks wait while rank 0 validates
            state.epoch += 1
            state.epoch_loss_sum, state.epoch_num_batches, state.epoch_seconds = 0.0, 0, 0.0
            sampler.set_epoch(state.epoch)
            save_last()
    logger.info("%s: trained %d epochs, %d steps", run_dir, state.epoch, state.step)
    if not is_main:
        assert distributed is not None
        distributed.barrier()  # rank 0 writes run.json
        return train_result(run_dir, already_complete=False, resumed=resumed)
    finish_run(
        run_dir,
        result={
            "num_epochs": state.epoch,
            "num_steps": state.step,
            "best_epoch": state.best_epoch,
            "best_val_dice": None if math.isnan(state.best_val_dice) else state.best_val_dice,
            "last_val_dice": _finite_or_none(state.history[-1]["val_dice"]) if state.history else None,
            "seconds": state.seconds,
        },
        timings={
            "train_seconds": state.seconds,
            "last_session_seconds": time.perf_counter() - session_start,
            "seconds_per_epoch": state.seconds / max(state.epoch, 1),
            "train_slices_per_second": state.num_slices / max(state.step_seconds, 1e-9),
        },
    )
    if distributed is not None:
        distributed.barrier()
    return train_result(run_dir, already_complete=False, resumed=resumed)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
