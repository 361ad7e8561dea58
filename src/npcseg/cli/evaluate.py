"""`npcseg evaluate`: score a folder of predicted masks against a labelled cohort."""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate_command(
    predictions: Path = typer.Option(
        ..., "--predictions", help="Folder of <case_id>.nii.gz masks (<case_id>_probability.* files are ignored)."
    ),
    reference: Path = typer.Option(
        ..., "--reference", help="Labelled cohort folder (COHORT/cases/<case_id>/label.nii.gz); never modified."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder for metrics.csv and summary.json (created)."),
    tolerance_mm: float = typer.Option(2.0, "--tolerance-mm", min=0.0, help="Surface-Dice tolerance in mm."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Score the predicted cases when some labelled cases have no prediction."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Per-case Dice, sensitivity, precision, CC, HD, HD95, ASSD, surface Dice, volumes; summary with DSCagg."""
    from rich.console import Console

    from npcseg.cli.cv import summary_table
    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.evaluation.evaluate import evaluate_predictions

        result = evaluate_predictions(
            predictions, reference, out, tolerance_mm=tolerance_mm, allow_missing=allow_missing, progress=progress
        )
    console = Console()
    console.print(summary_table(result.summary, f"evaluation of {predictions}"))
    dice_mean = result.summary["dice_mean"]
    console.print(f"DSCagg (all voxels of all cases): {result.dsc_agg:.4f}; mean per-case Dice: {dice_mean:.4f}")
    if result.missing_predictions:
        console.print(
            f"[yellow]{len(result.missing_predictions)} labelled case(s) without a prediction, not scored:[/] "
            + ", ".join(result.missing_predictions)
        )
    console.print(f"wrote {out / 'metrics.csv'} and {out / 'summary.json'}")
