"""Importer for the public NPC MRI dataset of Li et al. 2024 ("A dataset of primary nasopharyngeal carcinoma MRI
with multi-modalities segmentation", 277 patients, T1WI, T2WI and CE-T1WI with tumour masks).

```text
ROOT/<patient>/T1WI/*.dcm        -> COHORT/cases/<case_id>/t1.nii.gz
ROOT/<patient>/T2WI/*.dcm        -> t2.nii.gz
ROOT/<patient>/CE-T1WI/*.dcm     -> t1c.nii.gz
ROOT/<patient>/ROI-T2.nii[.gz]   -> label.nii.gz (tumour > 0), which must lie on the T2 grid
```

Sequence folders are recognised ignoring letter case and ``-``/``_`` (``T2WI``, ``t2``, ``CE-T1WI``, ``T1C``,
...). The label is the T2 tumour ROI: an image file whose name starts with ``ROI`` and names T2 (``ROI-T2.nii``,
``ROI_T2WI.nii.gz``), in the patient folder or in the T2 folder (where any ``ROI*`` image counts). Each sequence
folder must hold one image series; each series is read as by ``npcseg import dicom`` (header geometry, refusal of
inconsistent series) and recorded in ``dicom_sources.json``. Case ids are generated (``case-000``, ... in the
order of the patient folders) unless ``keep_identifiers``, which uses the folder names.

A patient with a problem is left out and the import goes on; the problems are raised together at the end, each
naming its file or folder.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.dicom.importer import ImportedCase, ImportResult, write_case
from npcseg.dicom.series import DicomSeries, scan_folder
from npcseg.dicom.volume import DicomVolume, read_series
from npcseg.io.cohort import CASE_ID_PATTERN, CASES_DIRNAME
from npcseg.io.images import image_stem, read_image
from npcseg.io.volume import Grid

logger = logging.getLogger(__name__)

SEQUENCE_FOLDERS: dict[str, frozenset[str]] = {
    "t1": frozenset({"t1wi", "t1", "t1w"}),
    "t2": frozenset({"t2wi", "t2", "t2w"}),
    "t1c": frozenset({"cet1wi", "cet1", "cet1w", "t1c", "t1ce", "t1wic", "t1cwi", "t1gd", "t1wice"}),
}
"""Sequence -> accepted folder names (lower case, without ``-``, ``_``, ``+`` or spaces)."""
ROI_GRID_TOLERANCE_MM = 1e-2
"""Largest origin / spacing difference (mm) between the T2 ROI and the T2 series (NIfTI stores float32)."""
ROI_GRID_TOLERANCE_DIRECTION = 1e-4


def import_li2024(
    root: Path,
    cohort: Path,
    *,
    case_id_prefix: str = "case",
    keep_identifiers: bool = False,
    on_case: Callable[[ImportedCase], None] | None = None,
) -> ImportResult:
    """Import every patient folder of ``root`` into ``cohort`` (see the module docstring).

    Raises:
        FileNotFoundError: when ``root`` does not exist or holds no patient folder with sequence folders.
        ValueError: listing every patient that could not be imported (the others are written), e.g. a T2 ROI
            that is not on the T2 grid (naming the file), a sequence folder with several or no series.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    patients = [folder for folder in sorted(root.iterdir()) if folder.is_dir() and _sequence_folders(folder)]
    if not patients:
        raise FileNotFoundError(f"{root}: no patient folders with T1WI / T2WI / CE-T1WI folders inside")
    cases_folder = Path(cohort) / CASES_DIRNAME
    cases: list[ImportedCase] = []
    failures: list[str] = []
    notes: list[str] = []
    num_files = num_not_dicom = 0
    for number, patient in enumerate(patients):
        case_id = patient.name if keep_identifiers else f"{case_id_prefix}-{number:03d}"
        if not CASE_ID_PATTERN.fullmatch(case_id):
            failures.append(f"{patient}: {case_id!r} is not a valid case id")
            continue
        try:
            volumes, files, not_dicom = _read_patient(patient)
            num_files, num_not_dicom = num_files + files, num_not_dicom + not_dicom
            label = _t2_label(patient, volumes)
        except ValueError as error:
            failures.append(str(error))
            continue
        if label is None:
            notes.append(f"{case_id}: no T2 ROI file (ROI*T2*.nii[.gz]); imported without a label")
        identifiers = {"patient_folder": patient.name} if keep_identifiers else {}
        case = write_case(cases_folder / case_id, volumes, label, identifiers=identifiers)
        cases.append(case)
        logger.info("%s: %s%s", case_id, ", ".join(sorted(case.sequences)), " + label" if label is not None else "")
        if on_case is not None:
            on_case(case)
    if failures:
        raise ValueError(
            f"{len(failures)} of {len(patients)} patient(s) not imported ({len(cases)} written): " + "; ".join(failures)
        )
    return ImportResult(
        cases=tuple(cases), skipped=(), notes=tuple(notes), num_files=num_files, num_not_dicom=num_not_dicom
    )


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _sequence_folders(patient: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in sorted(patient.iterdir()):
        if folder.is_dir():
            for sequence, names in SEQUENCE_FOLDERS.items():
                if _normalised(folder.name) in names:
                    found.setdefault(sequence, folder)
    return found


def _read_patient(patient: Path) -> tuple[dict[str, tuple[DicomSeries, DicomVolume]], int, int]:
    volumes = {}
    num_files = num_not_dicom = 0
    for sequence, folder in _sequence_folders(patient).items():
        scan = scan_folder(folder)
        num_files, num_not_dicom = num_files + scan.num_files, num_not_dicom + scan.num_not_dicom
        if len(scan.series) != 1:
            labels = ", ".join(series.label for series in scan.series) or "none"
            raise ValueError(f"{folder}: expected one image series, found {len(scan.series)} ({labels})")
        try:
            volumes[sequence] = (scan.series[0], read_series(scan.series[0]))
        except ValueError as error:
            raise ValueError(f"{folder}: {error}") from error
    return volumes, num_files, num_not_dicom


def _roi_files(patient: Path, t2_folder: Path | None) -> list[Path]:
    """Image files starting with ``ROI`` that name T2, in the patient folder; any ``ROI*`` image in the T2 folder."""
    found = []
    for path in sorted(patient.iterdir()):
        stem = image_stem(path)
        if path.is_file() and stem is not None and stem.lower().startswith("roi"):
            rest = _normalised(stem[3:])
            if rest in ("t2", "t2wi", "t2w"):
                found.append(path)
    if t2_folder is not None:
        for path in sorted(t2_folder.iterdir()):
            stem = image_stem(path)
            if path.is_file() and stem is not None and stem.lower().startswith("roi"):
                found.append(path)
    return found


def _t2_label(patient: Path, volumes: dict[str, tuple[DicomSeries, DicomVolume]]) -> sitk.Image | None:
    roi_files = _roi_files(patient, _sequence_folders(patient).get("t2"))
    if not roi_files:
        return None
    if len(roi_files) > 1:
        raise ValueError(f"{patient}: several T2 ROI files ({', '.join(p.name for p in roi_files)}); keep one")
    path = roi_files[0]
    if "t2" not in volumes:
        raise ValueError(f"{path}: a T2 ROI but no T2WI series in {patient}")
    grid = volumes["t2"][1].geometry.grid
    roi = read_image(path)
    mismatch = Grid.from_image(roi).mismatch(
        grid, tolerance_mm=ROI_GRID_TOLERANCE_MM, tolerance_direction=ROI_GRID_TOLERANCE_DIRECTION
    )
    if mismatch is not None:
        raise ValueError(f"{path}: the ROI is not on the grid of the T2WI series: {mismatch}")
    array = (sitk.GetArrayViewFromImage(roi) > 0).astype(np.uint8)
    return grid.apply_to(sitk.GetImageFromArray(array))
