"""`npcseg export ...`: a cohort out as an nnU-Net v2 raw dataset or as DICOM series."""

from __future__ import annotations

from pathlib import Path

import typer

from npcseg.cli.errors import user_errors
from npcseg.cli.options import comma_list

export_app = typer.Typer(
    help="Export a cohort (nnU-Net v2 raw dataset, DICOM series).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@export_app.command("nnunet")
def nnunet_command(
    cohort: Path = typer.Argument(..., help="Cohort folder (COHORT/cases/<case_id>/...)."),
    dataset_dir: Path = typer.Argument(..., help="Dataset folder to create, e.g. nnUNet_raw/Dataset501_NPC."),
    sequences: str = typer.Option("t2,t1", "--sequences", help="Comma-separated sequences, in channel order."),
    registrations: Path | None = typer.Option(
        None,
        "--registrations",
        help="Output folder of `npcseg register`: resample non-T2 channels onto T2 (else they must be on T2's grid).",
    ),
    dataset_name: str | None = typer.Option(None, "--dataset-name", help="'name' in dataset.json (default: folder)."),
) -> None:
    """Write the cohort as an nnU-Net v2 raw dataset (labelled cases to imagesTr/labelsTr, others to imagesTs)."""
    from rich.console import Console

    from npcseg.io.nnunet import export_nnunet

    with user_errors():
        sequence_list = comma_list(sequences)
        result = export_nnunet(
            cohort, dataset_dir, sequences=sequence_list, registrations=registrations, dataset_name=dataset_name
        )
        console = Console()
        console.print(f"channels: {result.channel_names}")
        if result.resampled:
            console.print(f"resampled onto T2 through registrations: {len(result.resampled)} image(s)")
        console.print(
            f"wrote {len(result.training)} training and {len(result.test)} test case(s) to {result.dataset_dir}"
        )


@export_app.command("dicom")
def dicom_command(
    path: Path = typer.Argument(..., help="A cohort folder or a single case folder."),
    out: Path = typer.Argument(..., help="Output folder: OUT/<case_id>/<sequence>/IM0001.dcm ..."),
    include_label: bool = typer.Option(
        True, "--label/--no-label", help="Also write each case's label as OUT/<case_id>/RTSTRUCT.dcm on its T2."
    ),
) -> None:
    """Write each sequence of each case as a DICOM MR series (PatientID = case id; new UIDs)."""
    from rich.console import Console

    from npcseg.dicom.write import export_cases

    with user_errors():
        written = export_cases(path, out, include_label=include_label)
        Console().print(
            f"wrote {sum(len(files) for files in written.values())} file(s) for {len(written)} case(s) to {out}"
        )
