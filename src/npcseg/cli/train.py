"""`npcseg train`: train one network on a preprocessed cache (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from npcseg.cli.options import comma_list


def train_command(
    cache: Path = typer.Option(..., "--cache", help="Preprocessed cache folder (output of `npcseg preprocess`)."),
    out: Path = typer.Option(
        ..., "--out", help="Run folder (created; rerunning on it resumes an interrupted run, a finished one is kept)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of TrainingConfig fields (nested 'augmentation' too) over the defaults."
    ),
    train_ids: str | None = typer.Option(
        None,
        "--train-ids",
        help="Comma-separated training case ids. Without it: the labelled cases not in --val-ids, or, with "
        "neither option, a seeded split of the labelled cases by the config's validation_fraction.",
    ),
    val_ids: str | None = typer.Option(
        None,
        "--val-ids",
        help="Comma-separated validation case ids. Without it (but with --train-ids): the other labelled cases.",
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the config's number of epochs."),
    seed: int | None = typer.Option(None, "--seed", help="Override the config's seed (weights, order, augmentation)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    nproc: int = typer.Option(
        1,
        "--nproc",
        min=1,
        help="Data-parallel worker processes (DistributedDataParallel; gloo on the CPU, NCCL on CUDA). The config's "
        "batch_size is the global batch, split over the workers; each uses cores // nproc threads unless the config "
        "sets num_threads.",
    ),
    device: str = typer.Option("cpu", "--device", help="Where to train: cpu, cuda or auto (CUDA when present)."),
) -> None:
    """Train a segmentation network (DEU by default) with Dice loss and Adam; validate every epoch."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.config import with_overrides
        from npcseg.training.cases import resolve_case_ids
        from npcseg.training.config import TrainingConfig, load_training_config
        from npcseg.training.distributed import train_distributed

        settings = load_training_config(config) if config is not None else TrainingConfig()
        overrides = {name: value for name, value in (("epochs", epochs), ("seed", seed)) if value is not None}
        if overrides:
            settings = with_overrides(settings, overrides)
        chosen_train, chosen_val = resolve_case_ids(cache, settings, comma_list(train_ids), comma_list(val_ids))
        result = train_distributed(
            cache,
            out,
            settings,
            chosen_train,
            chosen_val,
            num_processes=nproc,
            device=device,
            progress=progress,
        )
    console = Console(soft_wrap=True, highlight=False)
    if result.already_complete:
        console.print(f"{out}: run already complete ({result.num_epochs} epochs); nothing to do")
    else:
        verb = "resumed and trained" if result.resumed else "trained"
        console.print(
            f"{verb} {result.num_epochs} epoch(s), {result.num_steps} step(s) in {result.seconds:.1f} s "
            f"on {len(chosen_train)} case(s), validated on {len(chosen_val)}"
        )
    console.print(f"best validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch} -> {out}")
