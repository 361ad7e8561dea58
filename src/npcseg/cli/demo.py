"""`npcseg demo`: the main job end to end on an embedded synthetic cohort (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from npcseg.cli.errors import user_errors


def demo_command(
    out: Path = typer.Argument(Path("demo-output"), help="Output folder (created; reruns reuse finished stages)."),
    cases: int = typer.Option(8, "--cases", "-n", help="Synthetic patients in the cross-validation cohort."),
    seed: int = typer.Option(2020, "--seed", help="Cohort seed."),
    size: str = typer.Option("full", "--size", help="Synthetic acquisition preset: 'full' or 'small'."),
    folds: int = typer.Option(3, "--folds", help="Cross-validation folds."),
    epochs: int = typer.Option(7, "--epochs", help="Training epochs per fold."),
    workers: int = typer.Option(2, "--workers", "-w", help="Worker processes for per-case stages."),
) -> None:
    """Synthesise, validate, register T1 to T2 (with TRE), preprocess, cross-validate DEU, contour a new patient."""
    with user_errors():
        import numpy as np
        from rich.console import Console
        from rich.table import Table

        from npcseg.cli.cv import summary_table
        from npcseg.demo import DemoConfig, run_demo

        console = Console()
        settings = DemoConfig(
            num_cases=cases, seed=seed, synth_size=size, num_workers=workers, num_folds=folds, epochs=epochs
        )
        result = run_demo(out, settings)
        timing = Table(title="Stage times")
        timing.add_column("stage")
        timing.add_column("seconds", justify="right")
        for stage, seconds in result.seconds.items():
            timing.add_row(stage, f"{seconds:.1f}")
        console.print(timing)
        if result.tre_rows:
            means = np.array([row["mean_mm"] for row in result.tre_rows])
            maxima = np.array([row["max_mm"] for row in result.tre_rows])
            console.print(
                f"registration TRE over {len(means)} case-sequences: mean {means.mean():.2f} mm, "
                f"worst case mean {means.max():.2f} mm, max {maxima.max():.2f} mm"
            )
        console.print(summary_table(result.cv_summary, f"DEU {folds}-fold cross-validation, {epochs} epochs"))
        metrics = result.new_patient_metrics
        console.print(
            f"new patient: Dice {metrics['dice']:.3f}, sensitivity {metrics['sensitivity']:.3f}, "
            f"precision {metrics['precision']:.3f}, HD95 {metrics['hd95_mm']:.1f} mm"
        )
        console.print(f"\n[bold]Demo outputs are in {result.out.resolve()}[/]")
        console.print(f"  cohort:            {result.cohort}  (previews: {result.cohort / 'previews'})")
        console.print(f"  registrations:     {result.registrations}")
        console.print(f"  preprocessed:      {result.preprocessed}")
        console.print(f"  cross-validation:  {result.crossvalidation}  (metrics.csv, summary.json, fold_*/)")
        console.print(f"  new patient mask:  {result.prediction}")
        console.print(f"  record:            {result.out / 'demo.json'}")
        console.print(f"  report:            {result.report}  (open in a browser; works offline)")
