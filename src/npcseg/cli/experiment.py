"""`npcseg experiment ...`: the papers' experiments; `inputs` is DEU's T1 vs T2 vs T1+T2 comparison (Table 1)."""

from __future__ import annotations

from pathlib import Path

import typer

experiment_app = typer.Typer(
    help="Reproduce the papers' experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@experiment_app.command("inputs")
def inputs_command(
    cohort: Path = typer.Option(..., "--cohort", help="Labelled cohort folder (COHORT/cases/<case_id>/...)."),
    cache: Path = typer.Option(..., "--cache", help="Its preprocessed cache holding T1 and T2 (`npcseg preprocess`)."),
    out: Path = typer.Option(..., "--out", help="Experiment folder (created; a rerun resumes every input's folds)."),
    folds: int | None = typer.Option(None, "--folds", min=2, help="Number of folds (default 10, or the config's)."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML file of CrossValidationConfig fields shared by all inputs (training.model / sequences are set "
        "per input).",
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs per fold (overrides the config)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Cross-validate DEU on T1 only, T2 only and T1+T2 on the same folds; print the Mann-Whitney table."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.evaluation.experiment import run_input_experiment
        from npcseg.training.crossval import resolve_config

        settings = resolve_config(config, num_folds=folds, epochs=epochs)
        result = run_input_experiment(cohort, cache, out, settings, progress=progress)
    console = Console()
    console.print(result.table.to_markdown(), highlight=False, markup=False)
    console.print(f"written: {out / 'table.csv'}, {out / 'table.json'}, {out / 'table.md'}", highlight=False)
