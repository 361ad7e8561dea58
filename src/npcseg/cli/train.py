"""`npcseg train`: train one network on a preprocessed cache (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer


def _ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


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
) -> None:
    """Train a segmentation network (DEU by default) with Dice loss and Adam; validate every epoch."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.config import with_overrides
        from npcseg.data.dataset import labelled_cases
        from npcseg.training.config import TrainingConfig, load_training_config
        from npcseg.training.trainer import holdout_split, train

        settings = load_training_config(config) if config is not None else TrainingConfig()
        overrides = {name: value for name, value in (("epochs", epochs), ("seed", seed)) if value is not None}
        if overrides:
            settings = with_overrides(settings, overrides)
        chosen_train, chosen_val = _ids(train_ids), _ids(val_ids)
        if chosen_train is None or chosen_val is None:
            if not cache.is_dir():
                raise FileNotFoundError(f"{cache}: preprocessed cache folder not found")
            labelled = labelled_cases(cache)
            if not labelled:
                raise ValueError(f"{cache}: no labelled cases in the cache")
            if chosen_train is None and chosen_val is None:
                chosen_train, chosen_val = holdout_split(labelled, settings.validation_fraction, settings.seed)
            elif chosen_train is None:
                chosen_train = [case for case in labelled if case not in set(chosen_val or [])]
            else:
                chosen_val = [case for case in labelled if case not in set(chosen_train)]
        assert chosen_train is not None and chosen_val is not None
        result = train(cache, out, settings, chosen_train, chosen_val, progress=progress)
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
