"""`npcseg validate`: check a cohort folder and list every problem at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from npcseg.cli.options import comma_list

if TYPE_CHECKING:
    from rich.console import Console

    from npcseg.io.validation_report import ValidationReport


def validate_command(
    cohort: Path = typer.Argument(..., help="Cohort folder holding cases/<case_id>/ and optionally clinical.csv."),
    required: str = typer.Option(
        "t1,t2", "--required", help="Comma-separated sequences every case must have (of t1, t2, t1c)."
    ),
    reference: str = typer.Option("t2", "--reference", help="Sequence whose grid every label must lie on."),
    require_label: bool = typer.Option(False, "--require-label", help="Report a case without a label as an error."),
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write the full report (cases and problems) as JSON to this file."
    ),
) -> None:
    """Check every case of a cohort; exit 0 when there are no errors (warnings allowed), 1 when there are."""
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from npcseg.cli.errors import user_errors
    from npcseg.io.atomic import atomic_write_text
    from npcseg.io.cohort import cases_dir
    from npcseg.io.validation import validate_cohort
    from npcseg.io.validation_report import CaseSummary

    console = Console()
    with user_errors():
        sequences = tuple(comma_list(required))
        num_cases = sum(1 for entry in cases_dir(cohort).iterdir() if entry.is_dir())
        with Progress(
            TextColumn("checking"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=num_cases)

            def advance(case: CaseSummary) -> None:
                progress.update(task, advance=1, description=case.case_id)

            report = validate_cohort(
                cohort, required=sequences, reference=reference, require_label=require_label, on_case=advance
            )
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")

    _print_report(console, report)
    if json_path is not None:
        console.print(f"report written to {json_path}", highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(code=0 if report.is_valid else 1)


def _print_report(console: Console, report: ValidationReport) -> None:
    """Print the case table, the problems grouped by case, and a one-line verdict."""
    from rich.markup import escape
    from rich.table import Table

    from npcseg.io.cohort import SEQUENCES
    from npcseg.io.validation_report import ImageSummary, Problem

    def describe(summary: ImageSummary | None) -> str:
        if summary is None:
            return "-"
        size = "x".join(str(v) for v in summary.size_xyz)
        spacing = "x".join(f"{v:.3g}" for v in summary.spacing_xyz)
        return f"{size} @ {spacing} mm"

    shown = [
        sequence
        for sequence in SEQUENCES
        if sequence in report.required or any(sequence in case.images for case in report.cases)
    ]
    table = Table(title=escape(f"{report.cohort}: {len(report.cases)} case(s)"))
    table.add_column("case")
    for sequence in shown:
        table.add_column(sequence)
    table.add_column("label (tumour voxels)", justify="right")
    table.add_column("status")
    for case in report.cases:
        if case.num_tumour_voxels is None:
            label = "-"
        else:
            label = f"{case.num_tumour_voxels} ({case.tumour_volume_ml:.3g} ml)"
        parts = []
        if case.num_errors:
            parts.append(f"[red]{case.num_errors} error(s)[/]")
        if case.num_warnings:
            parts.append(f"[yellow]{case.num_warnings} warning(s)[/]")
        status = ", ".join(parts) or "[green]ok[/]"
        table.add_row(escape(case.case_id), *(describe(case.images.get(s)) for s in shown), label, status)
    console.print(table)

    def show(problem: Problem) -> str:
        try:
            path = problem.path.relative_to(report.cohort)
        except ValueError:
            path = problem.path
        colour = "red" if problem.severity == "error" else "yellow"
        return f"  [{colour}]{problem.severity}[/] {escape(str(path))}: {escape(problem.message)}"

    for case_id in [None, *(case.case_id for case in report.cases)]:  # the cohort's own problems first
        problems = report.problems_of(case_id)
        if problems:
            heading = "cohort" if case_id is None else f"case {case_id}"
            console.print(heading, style="bold", highlight=False, markup=False)
            for problem in problems:
                console.print(show(problem), highlight=False, soft_wrap=True)

    num_errors, num_warnings = len(report.errors), len(report.warnings)
    verdict = "[green]valid[/]" if report.is_valid else "[red]not valid[/]"
    counts = f"{len(report.cases)} case(s), {num_errors} error(s), {num_warnings} warning(s)"
    console.print(f"{verdict}: {counts}", highlight=False)
