"""`npcseg import ...`: clinical data into a cohort (DICOM folders, nnU-Net raw datasets, the Li et al. 2024 set)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from npcseg.cli.errors import user_errors
from npcseg.cli.options import comma_list

if TYPE_CHECKING:
    from npcseg.dicom.importer import ImportResult

import_app = typer.Typer(
    help="Import clinical data into a cohort (COHORT/cases/<case_id>/{t1,t2,t1c,label}.nii.gz).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@import_app.command("dicom")
def dicom_command(
    source: Path = typer.Argument(..., help="Folder tree of DICOM files (any names and layout); only read."),
    cohort: Path = typer.Argument(..., help="Cohort folder to write (created; one case per study)."),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="YAML file overriding the packaged series -> sequence rules (key by key)."
    ),
    roi_names: str = typer.Option(
        "GTVnx,GTVnd,GTV",
        "--roi-names",
        help="Comma-separated RTSTRUCT ROI names or regular expressions (whole name, any case) whose union is the "
        "label; empty for no labels.",
    ),
    case_id_prefix: str = typer.Option("case", "--prefix", help="Generated case ids are <prefix>-000, <prefix>-001..."),
    keep_identifiers: bool = typer.Option(
        False,
        "--keep-identifiers",
        help="Name cases <PatientID>_<StudyDate> and show identifiers (default: generated ids, no patient data).",
    ),
) -> None:
    """Import DICOM studies: map series to T1/T2/T1c, read them as volumes, rasterise RTSTRUCT labels on T2."""
    from npcseg.dicom.importer import import_dicom

    with user_errors():
        names = comma_list(roi_names)
        result = import_dicom(
            source,
            cohort,
            mapping=mapping,
            case_id_prefix=case_id_prefix,
            roi_names=names,
            keep_identifiers=keep_identifiers,
        )
        _print_result(result, cohort)


@import_app.command("nnunet")
def nnunet_command(
    dataset_dir: Path = typer.Argument(..., help="nnU-Net v2 raw dataset folder (dataset.json, imagesTr, labelsTr)."),
    cohort: Path = typer.Argument(..., help="Cohort folder to write (created)."),
    channels: str = typer.Option(
        "", "--channels", help="Channel -> sequence overrides, e.g. '0=t2,1=t1' (default: from channel names)."
    ),
) -> None:
    """Import an nnU-Net v2 raw dataset: channels become sequences, labelsTr labels (foreground merged)."""
    from rich.console import Console

    from npcseg.io.nnunet import import_nnunet

    with user_errors():
        overrides = {}
        for item in comma_list(channels):
            key, _, sequence = item.partition("=")
            if not key.strip().isdigit() or not sequence.strip():
                raise ValueError(f"--channels: expected 'index=sequence' items, got {item!r}")
            overrides[int(key)] = sequence.strip()
        case_ids = import_nnunet(dataset_dir, cohort, channels=overrides or None)
        Console().print(f"imported {len(case_ids)} case(s) into {cohort}")


@import_app.command("li2024")
def li2024_command(
    root: Path = typer.Argument(..., help="Dataset folder: <root>/<patient>/{T1WI,T2WI,CE-T1WI}/*.dcm + ROI-T2.nii."),
    cohort: Path = typer.Argument(..., help="Cohort folder to write (created)."),
    case_id_prefix: str = typer.Option("case", "--prefix", help="Generated case ids are <prefix>-000, <prefix>-001..."),
    keep_identifiers: bool = typer.Option(
        False, "--keep-identifiers", help="Use the patient folder names as case ids (default: generated ids)."
    ),
) -> None:
    """Import the NPC MRI dataset of Li et al. 2024 (T1WI, T2WI, CE-T1WI; the T2 ROI becomes the label)."""
    from npcseg.io.li2024 import import_li2024

    with user_errors():
        result = import_li2024(root, cohort, case_id_prefix=case_id_prefix, keep_identifiers=keep_identifiers)
        _print_result(result, cohort)


def _print_result(result: ImportResult, cohort: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"imported into {cohort}")
    for column in ("case", "t1", "t2", "t1c", "label"):
        table.add_column(column)
    for case in result.cases:
        row = [case.sequences.get(sequence, "-") for sequence in ("t1", "t2", "t1c")]
        table.add_row(case.case_id, *row, "yes" if case.has_label else "no")
    console.print(table)
    for skipped in result.skipped:
        console.print(f"skipped {skipped.series} ({skipped.case_id or 'no case'}): {skipped.reason}", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(
        f"{len(result.cases)} case(s) from {result.num_files} file(s) ({result.num_not_dicom} not DICOM images), "
        f"{len(result.skipped)} series skipped"
    )
