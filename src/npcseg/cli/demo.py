"""`npcseg demo`: the main job end to end on an embedded synthetic cohort (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from npcseg.cli.errors import user_errors


def demo_command(
    out: Path = typer.Argument(Path("demo-output"), help="Output folder (created; reruns reuse finished stages)."),
    cases: int = typer.Option(8, "--cases", "-n", help="Synthetic patients to generate."),
    seed: int = typer.Option(2020, "--seed", help="Cohort seed."),
    size: str = typer.Option("full", "--size", help="Synthetic acquisition preset: 'full' or 'small'."),
    workers: int = typer.Option(2, "--workers", "-w", help="Worker processes for per-case stages."),
) -> None:
    """Synthesise a cohort, validate, register T1/T1c to T2 (with TRE), and preprocess it."""
    with user_errors():
        import numpy as np
        from rich.console import Console
        from rich.table import Table

        from npcseg.demo import DemoConfig, run_demo

        console = Console()
        result = run_demo(out, DemoConfig(num_cases=cases, seed=seed, synth_size=size, num_workers=workers))
        timing = Table(title="Stage times")
        timing.add_column("stage")
        timing.add_column("seconds", justify="right")
        timing.add_column("s / case", justify="right")
        for stage, seconds in result.seconds.items():
            timing.add_row(stage, f"{seconds:.1f}", f"{seconds / cases:.2f}")
        console.print(timing)
        if result.tre_rows:
            means = np.array([row["mean_mm"] for row in result.tre_rows])
            maxima = np.array([row["max_mm"] for row in result.tre_rows])
            console.print(
                f"registration TRE over {len(means)} case-sequences: mean {means.mean():.2f} mm, "
                f"worst case mean {means.max():.2f} mm, max {maxima.max():.2f} mm"
            )
        console.print(f"\n[bold]Demo outputs are in {result.out.resolve()}[/]")
        console.print(f"  cohort:          {result.cohort}  (previews: {result.cohort / 'previews'})")
        console.print(f"  registrations:   {result.registrations}")
        console.print(f"  preprocessed:    {result.preprocessed}")
        console.print(f"  record:          {result.out / 'demo.json'}")
