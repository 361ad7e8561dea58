"""`npcseg cv`: patient-level k-fold cross-validation with out-of-fold predictions and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table


def cv_command(
    cohort: Path = typer.Option(..., "--cohort", help="Labelled cohort folder (COHORT/cases/<case_id>/...)."),
    cache: Path = typer.Option(..., "--cache", help="Its preprocessed cache (the output of `npcseg preprocess`)."),
    out: Path = typer.Option(..., "--out", help="Cross-validation folder (created; a rerun resumes)."),
    folds: int | None = typer.Option(None, "--folds", min=2, help="Number of folds (default 10, or the config's)."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML file of CrossValidationConfig fields (nested 'training' and 'postprocessing' merge key by key).",
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs per fold (overrides the config)."),
    external: Path | None = typer.Option(
        None, "--external", help="External cohort predicted by the ensemble of all folds (needs --external-cache)."
    ),
    external_cache: Path | None = typer.Option(
        None, "--external-cache", help="Preprocessed cache of the external cohort."
    ),
    parallel_folds: int = typer.Option(
        1,
        "--parallel-folds",
        min=1,
        help="Folds trained at once in separate processes (each with cores // N threads unless the config sets "
        "training.num_threads).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train every fold, predict its held-out patients on their original T2 grids, and score them."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.training.crossval import resolve_config, run_crossvalidation

        settings = resolve_config(config, num_folds=folds, epochs=epochs)
        result = run_crossvalidation(
            cohort,
            cache,
            out,
            settings,
            external_cohort=external,
            external_cache=external_cache,
            progress=progress,
            parallel_folds=parallel_folds,
        )
    console = Console()
    console.print(summary_table(result.summary, f"{settings.num_folds}-fold cross-validation, {out}"))
    if result.external is not None:
        console.print(summary_table(result.external.summary, f"external cohort {external}"))


def summary_table(summary: dict[str, Any], title: str) -> Table:
    """A rich table of a ``summary.json``: per metric mean ± sd, median (range), values / excluded."""
    from rich.table import Table

    from npcseg.evaluation.scoring import summary_table_rows

    table = Table(title=f"{title} ({summary['num_cases']} case(s))")
    for column in ("metric", "mean ± sd", "median (min-max)", "n / excluded"):
        table.add_column(column)
    for row in summary_table_rows(summary):
        table.add_row(*row)
    return table
