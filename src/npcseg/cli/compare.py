"""`npcseg compare`: cross-validate several network / loss configurations on the same folds (SeqSeg Tables 3-5)."""

from __future__ import annotations

from pathlib import Path

import typer


def compare_command(
    configs: list[Path] = typer.Argument(
        ...,
        help="Comparison YAML files (rows of model / loss settings over a shared base; e.g. configs/seqseg-*.yaml).",
    ),
    cohort: Path = typer.Option(..., "--cohort", help="Labelled cohort folder (COHORT/cases/<case_id>/...)."),
    cache: Path = typer.Option(..., "--cache", help="Its preprocessed cache holding every sequence the rows use."),
    out: Path = typer.Option(..., "--out", help="Comparison folder (created; a rerun resumes every row's folds)."),
    reference: str | None = typer.Option(
        None, "--reference", help="Row the others are tested against (default: the file's, else the last row)."
    ),
    folds: int | None = typer.Option(None, "--folds", min=2, help="Number of folds for every row (overrides)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs for every row (overrides)."),
    name: str = typer.Option(
        "table", "--name", help="Table file name in OUT (NAME.csv/.json/.md); tables sharing OUT reuse equal rows."
    ),
    parallel_folds: int = typer.Option(
        1, "--parallel-folds", min=1, help="Folds trained at once per row, each in its own process."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train every row on the same folds; print mean ± sd of Dice, precision, recall, CC, HD95 and Wilcoxon p."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.evaluation.comparison import load_comparison, run_comparison

        comparison = load_comparison(configs, reference=reference, num_folds=folds, epochs=epochs)
        result = run_comparison(
            cohort, cache, out, comparison, name=name, parallel_folds=parallel_folds, progress=progress
        )
    console = Console()
    console.print(f"{comparison.title}\n", highlight=False, markup=False)
    console.print(result.table.to_markdown(), highlight=False, markup=False)
    written = ", ".join(str(out / f"{name}.{suffix}") for suffix in ("csv", "json", "md"))
    console.print(f"written: {written}", highlight=False)
