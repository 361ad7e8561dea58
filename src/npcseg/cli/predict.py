"""`npcseg predict`: segment cases with trained runs or the SeqSeg cascade (masks on the original T2 grids)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

METHODS = ("network", "seqseg")
"""``--method`` choices: trained segmentation networks (``--model``) or the SeqSeg cascade (``--cascade``)."""


def predict_command(
    model: list[Path] | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Training run folder, or cross-validation folder (ensemble of its folds); repeat to ensemble runs "
        "(--method network).",
    ),
    method: str = typer.Option(
        "network",
        "--method",
        help="network: the segmentation networks of --model; seqseg: the detect-then-segment cascade of --cascade "
        "(presence per slice, box detector, crop segmenter; on every slice).",
    ),
    cascade: Path | None = typer.Option(
        None,
        "--cascade",
        help="--method seqseg: a trained cascade (`npcseg detect cascade-train` OUT) or a fold of a cascade "
        "cross-validation (OUT/<row>/fold_<k>).",
    ),
    input_path: Path = typer.Option(
        ..., "--input", "-i", help="Cohort folder (COHORT/cases/<case_id>/) or one case folder; never modified."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output folder for <case_id>.nii.gz masks and predict.json (created)."
    ),
    probability: bool = typer.Option(
        False, "--probability", help="Also write <case_id>_probability.nii.gz (float32 probability maps)."
    ),
    rtstruct: bool = typer.Option(
        False,
        "--rtstruct",
        help="Also write <case_id>_rtstruct.dcm, an RT Structure Set on the case's T2 DICOM series (cases imported "
        "with `npcseg import dicom`).",
    ),
    seg: bool = typer.Option(False, "--seg", help="Also write <case_id>_seg.dcm, a DICOM SEG on the T2 series."),
    roi_name: str = typer.Option("GTV", "--roi-name", help="ROI / segment name of the DICOM outputs."),
    tta: bool = typer.Option(False, "--tta", help="Flip test-time augmentation (average with left-right mirror)."),
    postprocess: str = typer.Option(
        "drop_single_slice",
        "--postprocess",
        help="3D clean-up: drop_single_slice (the paper's rule), largest_component or none.",
    ),
    connectivity: int = typer.Option(26, "--connectivity", help="Voxel neighbourhood of 3D components: 6, 18 or 26."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Foreground probability threshold (default: the runs' own)."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Slices per forward pass (default 2, fastest on CPUs: benchmarks/profile_predict.py; --method network).",
    ),
    registration: str = typer.Option(
        "trained",
        "--registration",
        help="Registration of raw cases: trained (the runs' settings) or fast (one Powell refinement pass on 10 % of "
        "the voxels: about 0.57x the CPU time, mean TRE 0.27 mm vs 0.25 mm on synthetic cases).",
    ),
    threads: int = typer.Option(
        0, "--threads", min=0, help="Torch CPU threads per worker (0: torch's default; with workers, cores // workers)."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        min=1,
        help="Worker processes predicting cases in parallel (each loads the networks). A rerun skips finished cases.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Register, pre-process as trained, run the networks (or the SeqSeg cascade), map back onto each case's T2
    grid, post-process."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.inference.cohort import predict_cohort
        from npcseg.inference.postprocessing import PostprocessingConfig
        from npcseg.inference.predictor import DEFAULT_BATCH_SIZE

        _check_method(method, model, cascade, tta=tta, batch_size=batch_size, workers=workers)
        settings = PostprocessingConfig(mode=postprocess, connectivity=connectivity)  # type: ignore[arg-type]
        predictor = None
        if cascade is not None:
            from npcseg.cascade.training import load_trained_cascade

            predictor = load_trained_cascade(
                cascade, threshold=threshold, postprocessing=settings, registration=registration
            )
        summary = predict_cohort(
            model or [],
            input_path,
            output,
            write_probability=probability,
            dicom_outputs=[name for name, wanted in (("rtstruct", rtstruct), ("seg", seg)) if wanted],
            roi_name=roi_name,
            tta_flip=tta,
            postprocessing=settings,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            num_threads=threads,
            threshold=threshold,
            progress=progress,
            num_workers=workers,
            registration=registration,
            predictor=predictor,
        )
    console = Console()
    console.print(_table(summary))
    done = summary["num_cases"] - summary["num_skipped"]
    what = "the SeqSeg cascade" if method == "seqseg" else f"{len(summary['settings']['runs'])} network(s)"
    console.print(
        f"predicted {done} case(s) ({summary['num_skipped']} already done) with {what} into {output}", highlight=False
    )


def _check_method(
    method: str, model: list[Path] | None, cascade: Path | None, *, tta: bool, batch_size: int | None, workers: int
) -> None:
    """``ValueError`` naming the option when the options do not fit ``--method``."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "network":
        if cascade is not None:
            raise ValueError("--cascade is for --method seqseg; --method network takes the runs of --model")
        if not model:
            raise ValueError("--method network needs at least one --model run folder")
        return
    if cascade is None:
        raise ValueError("--method seqseg needs --cascade (a `npcseg detect cascade-train` folder or a cascade fold)")
    unused = {
        "--model": bool(model),
        "--tta": tta,
        "--batch-size": batch_size is not None,
        "--workers > 1": workers > 1,
    }
    given = [name for name, is_given in unused.items() if is_given]
    if given:
        raise ValueError(
            f"{', '.join(given)} do(es) not apply to --method seqseg (the cascade's pieces come from --cascade, it "
            "has no flip test-time augmentation, its crop segmenter batches crops itself, it runs in one process)"
        )


def _table(summary: dict[str, Any]) -> Any:
    """Per-case table: slices, predicted volume and the main stages' seconds (every stage is in predict.json)."""
    from rich.table import Table

    stages = ("register", "network", "total")
    table = Table(title="predictions (seconds per stage in predict.json)")
    table.add_column("case", no_wrap=True)
    table.add_column("status")
    for column in ("slices", "volume ml", *(f"{stage} s" for stage in stages)):
        table.add_column(column, justify="right")
    for case_id, entry in summary["cases"].items():
        seconds = entry.get("seconds", {})
        table.add_row(
            case_id,
            entry.get("status", ""),
            str(entry.get("num_slices", "")),
            f"{entry['volume_ml']:.2f}" if "volume_ml" in entry else "",
            *(f"{seconds[stage]:.2f}" if stage in seconds else "" for stage in stages),
        )
    return table
