"""`npcseg synth`: generate a synthetic NPC MRI cohort (T1, T2, T1c, GTV label, true transforms, clinical
table)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from npcseg.cli.errors import user_errors

if TYPE_CHECKING:
    pass


def synth_command(
    out: Path = typer.Argument(..., help="Output cohort folder (created; complete cases already there are kept)."),
    cases: int = typer.Option(10, "--cases", "-n", help="Number of cases to generate."),
    seed: int = typer.Option(0, "--seed", help="Cohort seed; case i is identical whatever --cases is."),
    size: str = typer.Option(
        "full",
        "--size",
        help="Preset: 'full' (T2 512x512 at 0.48 mm, T1 256x256 at 0.93 mm, 20-45 slices) or 'small' "
        "(T2 128x128, T1 64x64, 12 slices; for tests and the demo).",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file with SynthConfig fields that override the --size preset."
    ),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes."),
) -> None:
    """Generate a synthetic nasopharyngeal carcinoma cohort with known ground truth."""
    with user_errors():
        import time

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from npcseg.config import load_config_over
        from npcseg.synth.cohort import synthesize_cohort
        from npcseg.synth.config import preset_config

        if size not in ("full", "small"):
            raise ValueError(f"--size must be 'full' or 'small', got {size!r}")
        settings = preset_config(size)  # type: ignore[arg-type]
        if config is not None:
            settings = load_config_over(settings, config)
        console = Console()
        start = time.perf_counter()
        with Progress(
            TextColumn("synth"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("cases", total=cases)
            identifiers = synthesize_cohort(
                out, cases, seed, settings, num_workers=workers, on_case_done=lambda _: progress.advance(task)
            )
        elapsed = time.perf_counter() - start
        console.print(f"wrote {len(identifiers)} cases to {out} in {elapsed:.1f} s (seed {seed}, size {size})")
