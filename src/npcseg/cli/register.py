"""`npcseg register`: rigid co-registration of T1 / T1c onto T2 for every case of a cohort."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from npcseg.cli.errors import user_errors
from npcseg.cli.options import comma_list

if TYPE_CHECKING:
    from rich.console import Console


def register_command(
    cohort: Path = typer.Argument(..., help="Cohort folder (with cases/<case_id>/{t1,t2,t1c}.nii.gz)."),
    out: Path = typer.Argument(..., help="Output folder for transforms and QA records (complete pairs are kept)."),
    preset_name: str = typer.Option(
        "default", "--preset", help="Settings preset: 'default' (reliable sub-mm) or 'paper' (the DEU paper's)."
    ),
    config_path: Path | None = typer.Option(
        None, "--config", help="YAML file with RegistrationConfig fields that override the preset."
    ),
    workers: int = typer.Option(1, "--workers", "-w", help="Parallel worker processes."),
    sequences: str = typer.Option("t1,t1c", "--sequences", help="Comma-separated moving sequences to register."),
    tre_region: str = typer.Option(
        "head", "--tre-region", help="Where to measure TRE when the cohort has truth/: 'head' or 'label'."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Rigidly register T1 (and T1c) to T2 by Mattes mutual information; print QA and, with truth, TRE."""
    from rich.console import Console
    from rich.table import Table

    from npcseg.registration.cohort import TRUTH_DIRNAME, evaluate_tre, register_cohort, summarize_tre
    from npcseg.registration.config import load_registration_config, preset
    from npcseg.registration.tre import Region

    console = Console()
    with user_errors():
        if tre_region not in ("head", "label"):
            raise ValueError(f"--tre-region must be 'head' or 'label', got {tre_region!r}")
        config = preset(preset_name)
        if config_path is not None:
            config = load_registration_config(config_path, base=config)
        sequence_list = comma_list(sequences)
        records = register_cohort(cohort, out, config, sequences=sequence_list, num_workers=workers, progress=progress)
        table = Table(title=f"registration ({config.name})")
        for column in ("case", "sequence", "metric", "iterations", "seconds", "status"):
            table.add_column(column)
        for record in records:
            table.add_row(
                record["case_id"],
                record["sequence"],
                f"{record['final_metric']:.4f}",
                str(record["num_iterations"]),
                f"{record['seconds']:.1f}",
                "skipped (done)" if record.get("skipped") else "registered",
            )
        console.print(table)
        if (Path(cohort) / TRUTH_DIRNAME).is_dir():
            region: Region = "label" if tre_region == "label" else "head"
            rows = evaluate_tre(cohort, out, region=region, sequences=sequence_list)
            _print_tre(console, rows, summarize_tre(rows), tre_region)
        console.print(f"wrote {len(records)} registration(s) to {out}")


def _print_tre(console: Console, rows: list[dict[str, Any]], summary: dict[str, dict[str, float]], region: str) -> None:
    from rich.table import Table

    where = "T2 head region (Otsu foreground)" if region == "head" else "label bounding box on T2"
    table = Table(title=f"target registration error (mm) over the {where}")
    for column in ("case", "sequence", "before", "mean", "max"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["case_id"],
            row["sequence"],
            f"{row['initial_mean_mm']:.2f}",
            f"{row['mean_mm']:.2f}",
            f"{row['max_mm']:.2f}",
        )
    for name, values in summary.items():
        table.add_row(
            f"[bold]cohort ({values['num_pairs']} pairs)[/]",
            name,
            "",
            f"{values['mean_mm']:.2f} (worst {values['worst_mean_mm']:.2f})",
            f"{values['max_mm']:.2f}",
        )
    console.print(table)
