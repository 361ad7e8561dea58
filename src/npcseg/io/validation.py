"""Cohort validation: check every case of a cohort and report every problem at once.

A cohort (see :mod:`npcseg.io.cohort`) is checked before anything else touches it, so that a bad file is found
with its name in one pass rather than as a crash hours into a run. :func:`validate_cohort` never stops at the
first problem: it reads every image once and lists every :class:`Problem`, each naming the file it is about.

Errors (the cohort cannot be used as it is): an unreadable or truncated image; an image that is not 3D or not
scalar; NaN or infinite voxels; label values other than 0 and 1; a label whose grid differs from its reference
image's (size, spacing, origin or direction, each named); a missing required sequence; a missing label when
labels are required; two files for one sequence (``t2.nii`` and ``t2.nii.gz``); a case id that is ill-formed
or equal to another ignoring case; a cohort without cases; a clinical table that is ill-formed or has rows
without a case.

Warnings (worth a look, the cohort is usable): files in a case folder that are not recognised; cases without a
clinical row; a label without tumour voxels; files in ``cases/`` that are not folders.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.io.clinical import scan_clinical
from npcseg.io.cohort import CASE_ID_PATTERN, CLINICAL_FILENAME, LABEL_STEM, SEQUENCES, cases_dir
from npcseg.io.images import IMAGE_SUFFIXES, find_image, finite_check, image_stem, read_image
from npcseg.io.nifti import nifti_nonfinite_count
from npcseg.io.validation_report import CaseSummary, ImageSummary, Problem, Severity, ValidationReport
from npcseg.io.volume import Grid

logger = logging.getLogger(__name__)


def validate_cohort(
    cohort: Path,
    required: tuple[str, ...] = ("t1", "t2"),
    reference: str = "t2",
    require_label: bool = False,
    *,
    on_case: Callable[[CaseSummary], None] | None = None,
) -> ValidationReport:
    """Check every case of a cohort and collect every problem (see the module docstring for the list).

    Each image is read once by SimpleITK; a float NIfTI file is read a second time, to count its NaN and
    infinite voxels, which ITK 5.4's NIfTI reader turns into 0 (see :mod:`npcseg.io.nifti`). A case folder
    may hold any of the sequences in :data:`npcseg.io.cohort.SEQUENCES`; those in ``required`` must be there.

    Args:
        cohort: the cohort folder (holding ``cases/`` and optionally ``clinical.csv``).
        required: sequences every case must have.
        reference: the sequence whose grid each label must lie on.
        require_label: report a case without a label as an error.
        on_case: called with each case's summary once its files are checked (for progress bars; its problem
            counts are filled in only in the report).

    Raises:
        FileNotFoundError: when ``cohort`` does not exist or has no ``cases/`` folder.
        ValueError: on a sequence name in ``required`` or ``reference`` that is not one of ``SEQUENCES``.
    """
    for sequence in (*required, reference):
        if sequence not in SEQUENCES:
            raise ValueError(f"unknown sequence '{sequence}'; sequences are {list(SEQUENCES)}")
    cohort = Path(cohort)
    folder_of_cases = cases_dir(cohort)
    entries = sorted(folder_of_cases.iterdir())
    case_folders = [entry for entry in entries if entry.is_dir()]
    problems: list[Problem] = []
    for entry in entries:
        if not entry.is_dir():
            message = f"not a case folder (only folders belong in {folder_of_cases})"
            problems.append(Problem("warning", entry, message))
    if not case_folders:
        problems.append(Problem("error", folder_of_cases, "the cohort has no cases (no folders inside)"))

    first_of: dict[str, str] = {}
    summaries = []
    for folder in case_folders:
        summary, case_problems = _check_case(folder, required, reference, require_label)
        case_problems = _check_case_id(folder, first_of) + case_problems
        problems += case_problems
        summaries.append(summary)
        logger.debug("checked %s: %d problem(s)", folder, len(case_problems))
        if on_case is not None:
            on_case(summary)

    clinical = cohort / CLINICAL_FILENAME
    if clinical.is_file():
        problems += _check_clinical(clinical, case_folders)
    summaries = [
        dataclasses.replace(
            summary,
            num_errors=sum(p.case_id == summary.case_id and p.severity == "error" for p in problems),
            num_warnings=sum(p.case_id == summary.case_id and p.severity == "warning" for p in problems),
        )
        for summary in summaries
    ]
    return ValidationReport(
        cohort=cohort,
        required=tuple(required),
        reference=reference,
        require_label=require_label,
        cases=tuple(summaries),
        problems=tuple(problems),
    )


def _check_case_id(folder: Path, first_of: dict[str, str]) -> list[Problem]:
    """Problems with a case folder's name; ``first_of`` maps lower-case ids seen so far to the id."""
    case_id = folder.name
    problems = []
    if not CASE_ID_PATTERN.fullmatch(case_id):
        problems.append(
            Problem(
                "error",
                folder,
                f"ill-formed case id {case_id!r}: use letters, digits, '_', '.', '-', starting with a letter "
                "or digit, at most 64 characters",
                case_id,
            )
        )
    key = case_id.lower()
    if key in first_of:
        problems.append(
            Problem(
                "error",
                folder,
                f"duplicate case id: {case_id!r} equals {first_of[key]!r} ignoring case (case ids must "
                "differ in more than letter case)",
                case_id,
            )
        )
    else:
        first_of[key] = case_id
    return problems


def _check_case(
    folder: Path, required: tuple[str, ...], reference: str, require_label: bool
) -> tuple[CaseSummary, list[Problem]]:
    """Check the files of one case folder; returns its summary (counts not yet filled in) and its problems."""
    case_id = folder.name
    problems: list[Problem] = []

    def report(severity: Severity, path: Path, message: str) -> None:
        problems.append(Problem(severity, path, message, case_id))

    known = {*SEQUENCES, LABEL_STEM}
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        report("error", folder, f"cannot list the case folder ({error.strerror})")
        entries = []
    for entry in entries:
        stem = image_stem(entry)
        if entry.is_file() and stem in known:
            continue
        kind = "folder" if entry.is_dir() else "file"
        hint = _naming_hint(entry)
        report("warning", entry, f"{kind} not recognised, ignored{hint}")

    images: dict[str, sitk.Image] = {}
    summaries: dict[str, ImageSummary] = {}
    files = {stem: find_image(folder, stem) for stem in (*SEQUENCES, LABEL_STEM)}
    for stem, found in files.items():
        if len(found) > 1:
            names = " and ".join(path.name for path in found)
            report("error", found[1], f"{len(found)} files for '{stem}' ({names}); keep one")
        if not found:
            continue
        image = _read(found[0], report)
        if image is not None:
            images[stem] = image
            summaries[stem] = ImageSummary(
                path=found[0],
                size_xyz=tuple(int(v) for v in image.GetSize()),
                spacing_xyz=tuple(float(v) for v in image.GetSpacing()),
                pixel_type=image.GetPixelIDTypeAsString(),
            )

    for sequence in required:
        if not files[sequence]:
            accepted = ", ".join(f"{sequence}{suffix}" for suffix in IMAGE_SUFFIXES)
            report("error", folder, f"missing required sequence '{sequence}' (expected one of {accepted})")
    label_files = files[LABEL_STEM]
    if require_label and not label_files:
        report("error", folder, "missing label (expected label.nii.gz or another accepted ending)")

    num_tumour_voxels = None
    tumour_volume_ml = None
    label = images.get(LABEL_STEM)
    if label is not None:
        num_tumour_voxels = _check_label_values(label_files[0], label, report)
        voxel_volume_mm3 = float(np.prod(label.GetSpacing()))
        tumour_volume_ml = num_tumour_voxels * voxel_volume_mm3 / 1000.0
        if not files[reference]:
            if reference not in required:
                message = f"cannot check the label's grid: reference '{reference}' is missing"
                report("error", label_files[0], message)
        elif reference in images:
            _check_label_grid(label_files[0], label, files[reference][0], images[reference], report)

    case = CaseSummary(
        case_id=case_id,
        folder=folder,
        images={sequence: summaries[sequence] for sequence in SEQUENCES if sequence in summaries},
        label=summaries.get(LABEL_STEM),
        num_tumour_voxels=num_tumour_voxels,
        tumour_volume_ml=tumour_volume_ml,
    )
    return case, problems


def _read(path: Path, report: Callable[[Severity, Path, str], None]) -> sitk.Image | None:
    """Read ``path`` (3D scalar, all voxels finite) or report why it cannot be used and return ``None``.

    NaN and infinite voxels are reported but the image is returned (its grid and other values can be checked).
    """
    try:
        image = read_image(path)
    except (ValueError, FileNotFoundError) as error:
        report("error", path, _without_path(str(error), path))
        return None
    num_nonfinite = None
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        num_nonfinite = nifti_nonfinite_count(path)  # the NIfTI reader turned them into 0
    if num_nonfinite is None:
        num_nonfinite = finite_check(image)
    if num_nonfinite:
        num_voxels = int(np.prod(image.GetSize()))
        report("error", path, f"{num_nonfinite} of {num_voxels} voxels are NaN or infinite")
    return image


def _check_label_values(path: Path, label: sitk.Image, report: Callable[[Severity, Path, str], None]) -> int:
    """Report label values other than 0 and 1 (NaN is reported by the reader); returns the number of 1s."""
    array = sitk.GetArrayViewFromImage(label)
    is_tumour = array == 1
    is_other = ~(is_tumour | (array == 0))
    if np.issubdtype(array.dtype, np.floating):
        is_other &= np.isfinite(array)
    num_other = int(np.count_nonzero(is_other))
    if num_other:
        values = np.unique(array[is_other])
        shown = ", ".join(f"{value:g}" for value in values[:8]) + (", ..." if len(values) > 8 else "")
        message = f"{num_other} voxels have values other than 0 and 1 ({shown}); labels are binary"
        report("error", path, message)
    num_tumour = int(np.count_nonzero(is_tumour))
    if num_tumour == 0:
        report("warning", path, "the label has no tumour voxels (no value 1)")
    return num_tumour


def _check_label_grid(
    label_path: Path,
    label: sitk.Image,
    reference_path: Path,
    reference: sitk.Image,
    report: Callable[[Severity, Path, str], None],
) -> None:
    """Report each way the label's grid differs from its reference image's (size, spacing, origin, direction).

    :meth:`Grid.mismatch` names the first difference only, so it is asked once per grid field, with a grid
    that differs from the reference in that field alone.
    """
    reference_grid = Grid.from_image(reference)
    label_grid = Grid.from_image(label)
    differences = []
    for field in dataclasses.fields(Grid):
        only_this = dataclasses.replace(reference_grid, **{field.name: getattr(label_grid, field.name)})
        difference = only_this.mismatch(reference_grid)
        if difference is not None:
            differences.append(difference)
    if differences:
        listing = "; ".join(differences)
        report(
            "error",
            label_path,
            f"label grid does not match {reference_path.name} (label vs reference): {listing}",
        )


def _check_clinical(path: Path, case_folders: list[Path]) -> list[Problem]:
    """Problems of the clinical table and of its agreement with the case folders."""
    try:
        table, issues = scan_clinical(path)
    except ValueError as error:
        return [Problem("error", path, _without_path(str(error), path))]
    problems = [Problem("error", path, str(issue)) for issue in issues]
    case_ids = {folder.name for folder in case_folders}
    by_lower = {case_id.lower(): case_id for case_id in case_ids}
    for case_id in table.case_ids:
        if case_id not in case_ids:
            near = by_lower.get(case_id.lower())
            hint = f" (a case {near!r} exists: ids are case-sensitive)" if near else ""
            message = f"line {table.lines[case_id]}: row {case_id!r} has no case folder{hint}"
            problems.append(Problem("error", path, message))
    for folder in case_folders:
        if folder.name not in table:
            problems.append(Problem("warning", folder, f"no row in {path.name}", folder.name))
    return problems


def _without_path(message: str, path: Path) -> str:
    """``message`` without a leading ``"<path>: "`` (the problem names the path already)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _naming_hint(entry: Path) -> str:
    """A suggestion for a file that is probably a misnamed sequence or label."""
    lower = entry.name.lower()
    for stem in (*SEQUENCES, LABEL_STEM):
        for suffix in IMAGE_SUFFIXES:
            if lower == f"{stem}{suffix}":
                return f"; names are case-sensitive: rename it to {stem}{suffix}"
    if image_stem(Path(lower)) is not None:
        return f"; images must be named {', '.join(SEQUENCES)} or {LABEL_STEM} plus an accepted ending"
    return ""
