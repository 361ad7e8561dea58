"""`npcseg report`: one self-contained HTML report of a cross-validation, experiment, evaluation or training run."""

from __future__ import annotations

from pathlib import Path

import typer

from npcseg.cli.errors import user_errors


def report_command(
    folder: Path = typer.Argument(
        ...,
        help="A cross-validation folder, an input-experiment folder (t1/ t2/ t1_t2/), an evaluation folder "
        "(metrics.csv + summary.json) or a single training run (log.csv).",
    ),
    cohort: Path | None = typer.Option(
        None, "--cohort", help="Cohort whose images the overlays show (default: the one the folder records)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="HTML file to write (default: FOLDER/report.html); figures go to <name>_files/."
    ),
    cases: int = typer.Option(5, "--cases", min=0, help="Number of worst and of best cases to draw (each)."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="An evaluation's predictions folder, when its summary.json does not record it."
    ),
) -> None:
    """Summary and per-case tables, box plots, learning curves and worst / best case overlays, in one HTML file."""
    with user_errors():
        from rich.console import Console

        from npcseg.report import build_report

        result = build_report(folder, out, cohort=cohort, predictions=predictions, num_cases=cases)
    console = Console()
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if result.worst:
        console.print(f"worst cases: {', '.join(result.worst)}", highlight=False)
        console.print(f"best cases:  {', '.join(result.best)}", highlight=False)
    console.print(f"report: {result.html.resolve()}  ({len(result.figures)} figures, {result.seconds:.1f} s)")
