"""Data-parallel training over several processes (``DistributedDataParallel``), on CPUs (gloo) or GPUs (NCCL).

Two ways to launch N worker processes on one machine::

    npcseg train --cache CACHE --out RUN --nproc N                      # spawns the workers itself
    torchrun --nproc_per_node N -m npcseg.training.distributed --cache CACHE --out RUN [--config C.yaml]

Every worker runs :func:`npcseg.training.trainer.train` with a :class:`DistributedContext`; the result is the same
run folder as single-process training (``config.yaml``, checkpoints, ``log.csv``, ``run.json``), written by rank 0
only, and a rerun on it resumes, with any number of processes (the checkpoint holds no per-rank state).

How a global batch is shared between the ranks and why one data-parallel step equals a single-process step
(``TrainingConfig.batch_size`` is the GLOBAL batch): :mod:`npcseg.training.data_parallel`.

The global batch must hold at least one slice per process (``batch_size >= W``; the paper's batch of 1 is a
single-process setting). Adam turns last-bit differences of gradients near 0 into differences of up to the
learning rate in its first steps, so weights after a few Adam steps agree with single-process training only
approximately (measured on a tiny network: difference / update norm 0.024 after 6 steps), while SGD steps and
the logged losses agree to float precision (``tests/training/test_distributed.py``).

Threads and memory: each worker uses ``config.num_threads`` torch threads, or ``cpu_count // W`` when that is 0,
and holds its own copy of the training slices (:class:`npcseg.data.dataset.SliceDataset` keeps them in memory):
W times the memory of a single process. On a CPU the speed-up needs W free groups of cores.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as torch_distributed

from npcseg.training.data_parallel import DistributedContext

if TYPE_CHECKING:
    from npcseg.training.config import TrainingConfig
    from npcseg.training.trainer import TrainResult

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(hours=2)
"""How long a collective (a barrier while rank 0 validates on the CPU, a gradient all-reduce) may wait."""

__all__ = [
    "backend_for",
    "check_world",
    "free_port",
    "initialize",
    "main",
    "resolve_device",
    "threads_per_process",
    "train_distributed",
]


def threads_per_process(world_size: int, requested: int = 0) -> int:
    """Torch threads of one of ``world_size`` processes: ``requested`` when positive, else ``cpu_count // W``."""
    if requested > 0:
        return requested
    return max(1, (os.cpu_count() or 1) // max(world_size, 1))


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``; ``ValueError`` for CUDA without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu or auto")
        return torch.device("cuda")
    raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")


def backend_for(device: torch.device) -> str:
    """The process-group backend: ``nccl`` for CUDA, ``gloo`` for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for the workers' rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def initialize(
    rank: int, world_size: int, device: torch.device, init_method: str, local_rank: int | None = None
) -> DistributedContext:
    """Join the default process group (gloo on the CPU, NCCL on CUDA) and return this worker's context.

    On CUDA the worker takes GPU ``local_rank`` (default: ``rank``; one machine). The group's timeout,
    :data:`TIMEOUT`, bounds how long the other ranks wait at a barrier while rank 0 validates.
    """
    if device.type == "cuda":
        index = rank if local_rank is None else local_rank
        device = torch.device("cuda", index % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    torch_distributed.init_process_group(
        backend_for(device), init_method=init_method, rank=rank, world_size=world_size, timeout=TIMEOUT
    )
    return DistributedContext(rank=rank, world_size=world_size, device=device)


def _worker(
    rank: int,
    world_size: int,
    init_method: str,
    device_type: str,
    arguments: tuple[Path, Path, TrainingConfig, list[str], list[str], bool],
) -> None:
    """Entry point of one spawned worker: join the group, train, leave the group."""
    from npcseg.training.trainer import train

    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s [rank {rank}] %(message)s")
    context = initialize(rank, world_size, torch.device(device_type), init_method)
    cache, run_dir, config, train_ids, val_ids, progress = arguments
    try:
        train(cache, run_dir, config, train_ids, val_ids, progress=progress and rank == 0, distributed=context)
    finally:
        torch_distributed.destroy_process_group()


def check_world(config: TrainingConfig, num_processes: int, device: torch.device) -> None:
    """``ValueError`` unless ``num_processes`` workers can share ``config.batch_size`` on ``device``."""
    if num_processes < 1:
        raise ValueError(f"the number of processes must be at least 1, got {num_processes}")
    if num_processes > config.batch_size:
        raise ValueError(
            f"{num_processes} processes for a global batch of {config.batch_size} slice(s): every process needs at "
            f"least one slice per step; raise batch_size (the global batch) to {num_processes} or more"
        )
    if device.type == "cuda" and num_processes > torch.cuda.device_count():
        raise ValueError(f"{num_processes} processes but only {torch.cuda.device_count()} CUDA GPU(s)")
    if config.loss_options.get("batch_dice"):
        logger.warning("batch_dice couples a batch's samples: distributed steps differ from single-process ones")


def train_distributed(
    cache: Path,
    run_dir: Path,
    config: TrainingConfig,
    train_ids: list[str],
    val_ids: list[str],
    *,
    num_processes: int,
    device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train like :func:`npcseg.training.trainer.train`, data-parallel over ``num_processes`` spawned workers.

    The run folder is claimed (or checked, or found complete) in this process before any worker starts, so a
    mismatched rerun fails with the usual message. With one process this is plain :func:`train` on ``device``.

    Args:
        cache, run_dir, config, train_ids, val_ids, progress: as :func:`npcseg.training.trainer.train`;
            ``config.batch_size`` is the global batch (see the module docstring).
        num_processes: workers W (at most ``config.batch_size``; on CUDA at most the number of GPUs).
        device: ``auto``, ``cpu`` (gloo) or ``cuda`` (NCCL, one GPU per worker).

    Returns:
        The run's :class:`TrainResult` (read back from ``run.json`` after the workers finished).
    """
    import torch.multiprocessing as torch_multiprocessing

    from npcseg.training.cases import check_cases
    from npcseg.training.run_folder import claim_run
    from npcseg.training.trainer import train, train_result

    resolved = resolve_device(device)
    check_world(config, num_processes, resolved)
    cache, run_dir = Path(cache), Path(run_dir)
    if num_processes == 1:
        return train(cache, run_dir, config, list(train_ids), list(val_ids), progress=progress, device=resolved)
    check_cases(cache, list(train_ids), list(val_ids), config)
    record = claim_run(run_dir, cache, config, list(train_ids), list(val_ids))
    if record.get("status") == "complete":
        return train_result(run_dir, already_complete=True, resumed=False)
    resumed = (run_dir / "checkpoint_last.pt").is_file()
    init_method = f"tcp://127.0.0.1:{free_port()}"
    logger.info("training on %d %s process(es) (%s)", num_processes, resolved.type, backend_for(resolved))
    arguments = (cache, run_dir, config, list(train_ids), list(val_ids), progress)
    torch_multiprocessing.spawn(
        _worker, args=(num_processes, init_method, resolved.type, arguments), nprocs=num_processes, join=True
    )
    return train_result(run_dir, already_complete=False, resumed=resumed)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m npcseg.training.distributed",
        description="One worker of data-parallel training; launch with torchrun --nproc_per_node N.",
    )
    parser.add_argument("--cache", type=Path, required=True, help="preprocessed cache folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created; a rerun resumes)")
    parser.add_argument("--config", type=Path, help="YAML file of TrainingConfig fields over the defaults")
    parser.add_argument("--train-ids", help="comma-separated training case ids")
    parser.add_argument("--val-ids", help="comma-separated validation case ids")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--device", default="auto", help="auto, cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """``torchrun`` entry: read RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT from the environment and train."""
    from npcseg.config import with_overrides
    from npcseg.training.cases import resolve_case_ids
    from npcseg.training.config import TrainingConfig, load_training_config
    from npcseg.training.trainer import train

    arguments = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SystemExit("run under torchrun (RANK and WORLD_SIZE unset), or use `npcseg train --nproc N`")
    config = load_training_config(arguments.config) if arguments.config is not None else TrainingConfig()
    if arguments.epochs is not None:
        config = with_overrides(config, {"epochs": arguments.epochs})
    split = _split(arguments.train_ids), _split(arguments.val_ids)
    train_ids, val_ids = resolve_case_ids(arguments.cache, config, *split)
    device = resolve_device(arguments.device)
    world_size = int(os.environ["WORLD_SIZE"])
    check_world(config, world_size, device)
    rank = int(os.environ["RANK"])
    context = initialize(rank, world_size, device, "env://", int(os.environ.get("LOCAL_RANK", rank)))
    try:
        train(
            arguments.cache,
            arguments.out,
            config,
            train_ids,
            val_ids,
            progress=not arguments.no_progress and context.is_main,
            distributed=context,
        )
    finally:
        torch_distributed.destroy_process_group()


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


if __name__ == "__main__":
    main()
