"""`npcseg preprocess`: a cohort onto the network grid, cached as arrays plus per-case records."""

from __future__ import annotations

from pathlib import Path

import typer


def preprocess_command(
    cohort: Path = typer.Argument(..., help="Cohort folder (COHORT/cases/<case_id>/{t1,t2,...}) or one case folder."),
    out: Path = typer.Argument(..., help="Output cache folder (created; a rerun resumes and skips finished cases)."),
    preset: str = typer.Option(
        "deu", "--preset", help="Base settings: 'deu' (T1+T2, 256) or 'seqseg' (T1, T1c, T2, 384)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML file of PreprocessingConfig fields (nested 'registration' too) overriding the preset's.",
    ),
    registrations: Path | None = typer.Option(
        None,
        "--registrations",
        help="Folder written by `npcseg register`: use its transforms instead of registering.",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Cases processed in parallel (separate processes)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Register, resample onto the T2 slices at the target in-plane spacing, normalise, pad / crop."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.preprocessing.cache import preprocess_cohort
        from npcseg.preprocessing.config import load_preprocessing_config
        from npcseg.preprocessing.config import preset as preset_config

        settings = preset_config(preset)
        if config is not None:
            settings = load_preprocessing_config(config, base=settings)
        summary = preprocess_cohort(
            cohort, out, settings, registrations=registrations, num_workers=workers, progress=progress
        )
    Console().print(
        f"preprocessed {summary['num_cases']} case(s) ({summary['num_skipped']} already done) into {out}",
        highlight=False,
    )
