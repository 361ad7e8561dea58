"""Importing a folder tree of DICOM files into a cohort: one case per study, T1 / T2 / T1c as NIfTI, provenance.

```text
COHORT/cases/<case_id>/{t1,t2,t1c}.nii.gz    the series read (npcseg.dicom.volume), header geometry
COHORT/cases/<case_id>/label.nii.gz          from an RTSTRUCT in the source tree, on the T2 grid (when one matches)
COHORT/cases/<case_id>/dicom_sources.json    {"<sequence>": {"series_instance_uid", "study_instance_uid",
                                             "frame_of_reference_uid", "files": [absolute paths, slice order]}}
COHORT/dicom_import.json                     summary: cases, sequences, skipped series and why (no patient data)
```

Each ``(PatientID, StudyInstanceUID)`` becomes a case. Series are named by :mod:`npcseg.dicom.mapping`; when several
series of a study map to one sequence, the best ranked one that reads as a regular volume is kept and the others
are reported. Case ids are generated (``case-000``, ``case-001``, ... in the order of the studies' UIDs), so no
identifier reaches file names, logs or the summary; the link from a case to its study is only in
``dicom_sources.json``. A study imported before (its UID is in a case's ``dicom_sources.json``) keeps its case
id, so a rerun rewrites the same cases. ``keep_identifiers`` names cases ``<PatientID>_<StudyDate>`` instead and
adds those to the summary. The source tree is only read.

Labels: an RT Structure Set in the source tree that references the study's T2 series (or another imported series
in T2's frame of reference) is rasterised on the T2 grid with :func:`npcseg.dicom.rtstruct.read_rtstruct`, as
the union of its ROIs matching ``roi_names`` (names or regular expressions, ignoring case).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from npcseg.dicom.mapping import SequenceMapping, load_mapping, map_series, rank_candidates
from npcseg.dicom.series import DicomSeries, scan_folder
from npcseg.dicom.volume import DicomVolume, read_series
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import CASE_ID_PATTERN, CASES_DIRNAME, SEQUENCES
from npcseg.io.images import write_image

logger = logging.getLogger(__name__)

SOURCES_FILENAME = "dicom_sources.json"
"""Per case: the DICOM series each sequence was read from (the only link from a case to its source)."""
SUMMARY_FILENAME = "dicom_import.json"
"""Per cohort: what the last import did, without patient data."""
DEFAULT_ROI_NAMES: tuple[str, ...] = ("GTVnx", "GTVnd", "GTV")
"""ROI names (or regular expressions, matched whole and ignoring case) whose union becomes the label."""
LABEL_SEQUENCE = "t2"
"""The sequence whose grid the label lies on."""


@dataclass(frozen=True)
class SkippedSeries:
    """A series that did not become a sequence of a case.

    Attributes:
        case_id: the case its study became, or ``None`` when the study gave no case.
        series: the series' :attr:`~npcseg.dicom.series.DicomSeries.label` (number and description).
        reason: why, in words without patient data.
    """

    case_id: str | None
    series: str
    reason: str


@dataclass(frozen=True)
class ImportedCase:
    """One case written.

    Attributes:
        case_id: the case folder name.
        sequences: sequence -> label of the series it was read from.
        has_label: whether ``label.nii.gz`` was written.
        identifiers: ``patient_id`` and ``study_date`` (only with ``keep_identifiers``; empty otherwise).
    """

    case_id: str
    sequences: dict[str, str]
    has_label: bool
    identifiers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_dicom` did.

    Attributes:
        cases: the cases written, sorted by case id.
        skipped: series not imported, each with its reason.
        notes: other remarks (RTSTRUCTs not used and why, ...), without patient data.
        num_files: files looked at in the source tree.
        num_not_dicom: files that were not DICOM images or structure sets.
    """

    cases: tuple[ImportedCase, ...]
    skipped: tuple[SkippedSeries, ...]
    notes: tuple[str, ...]
    num_files: int
    num_not_dicom: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (the summary file)."""
        return {
            "num_cases": len(self.cases),
            "num_files": self.num_files,
            "num_not_dicom": self.num_not_dicom,
            "cases": [
                {"case_id": c.case_id, "sequences": c.sequences, "has_label": c.has_label, **c.identifiers}
                for c in self.cases
            ],
            "skipped": [{"case_id": s.case_id, "series": s.series, "reason": s.reason} for s in self.skipped],
            "notes": list(self.notes),
        }


def import_dicom(
    source: Path,
    cohort: Path,
    *,
    mapping: SequenceMapping | Path | None = None,
    case_id_prefix: str = "case",
    roi_names: Sequence[str] = DEFAULT_ROI_NAMES,
    keep_identifiers: bool = False,
    on_case: Callable[[ImportedCase], None] | None = None,
) -> ImportResult:
    """Import every study under ``source`` into ``cohort`` (see the module docstring).

    Args:
        source: a folder tree of DICOM files (any names and layout); never written to.
        cohort: the cohort folder (created; existing cases of other studies are left alone).
        mapping: sequence naming rules, a YAML file overriding the defaults, or ``None`` for the defaults.
        case_id_prefix: generated case ids are ``<prefix>-000``, ``<prefix>-001``, ...
        roi_names: RTSTRUCT ROI names or regular expressions whose union is the label; empty for no labels.
        keep_identifiers: name cases after PatientID and StudyDate and put those in the summary.
        on_case: called after each case is written (progress).

    Returns:
        The cases written and the series left out, with reasons.

    Raises:
        FileNotFoundError: when ``source`` does not exist.
        ValueError: for a cohort inside the source tree, an ill-formed prefix, bad mapping rules, or a source
            without any series that maps to a sequence.
    """
    source = Path(source).resolve()
    cohort = Path(cohort).resolve()
    if not source.exists():
        raise FileNotFoundError(f"{source}: DICOM source folder not found")
    if cohort == source or source in cohort.parents:
        raise ValueError(f"{cohort}: the cohort must not be inside the DICOM source folder {source} (never written)")
    if not CASE_ID_PATTERN.fullmatch(f"{case_id_prefix}-000"):
        raise ValueError(f"case id prefix {case_id_prefix!r} does not make valid case ids (letters, digits, _ . -)")
    rules = mapping if isinstance(mapping, SequenceMapping) else load_mapping(mapping)
    scan = scan_folder(source)
    studies: dict[tuple[str, str], list[DicomSeries]] = {}
    for series in scan.series:
        studies.setdefault((series.patient_id, series.study_instance_uid), []).append(series)

    cases_folder = cohort / CASES_DIRNAME
    known = _imported_studies(cases_folder)
    used_ids = {folder.name for folder in cases_folder.iterdir()} if cases_folder.is_dir() else set()
    cases: list[ImportedCase] = []
    skipped: list[SkippedSeries] = []
    notes: list[str] = []
    for (patient_id, study_uid), members in sorted(studies.items(), key=lambda item: item[0][1]):
        chosen, study_skipped = _choose_series(members, rules)
        if not chosen:
            skipped += [SkippedSeries(None, label, reason) for label, reason in study_skipped]
            continue
        case_id = known.get(study_uid) or _new_case_id(
            used_ids, case_id_prefix, patient_id, members[0].study_date, keep_identifiers
        )
        used_ids.add(case_id)
        skipped += [SkippedSeries(case_id, label, reason) for label, reason in study_skipped]
        label = _label_of(case_id, chosen, scan.rtstructs, roi_names, notes) if roi_names else None
        identifiers = {"patient_id": patient_id, "study_date": members[0].study_date} if keep_identifiers else {}
        case = write_case(cases_folder / case_id, chosen, label, identifiers=identifiers)
        cases.append(case)
        logger.info("%s: %s%s", case_id, ", ".join(sorted(case.sequences)), " + label" if case.has_label else "")
        if on_case is not None:
            on_case(case)
    result = ImportResult(
        cases=tuple(sorted(cases, key=lambda case: case.case_id)),
        skipped=tuple(skipped),
        notes=tuple(notes),
        num_files=scan.num_files,
        num_not_dicom=scan.num_not_dicom,
    )
    if cases:
        atomic_write_text(cohort / SUMMARY_FILENAME, json.dumps(result.to_dict(), indent=1) + "\n")
    else:
        listing = "; ".join(f"{s.series}: {s.reason}" for s in skipped[:10]) or "no image series found"
        raise ValueError(
            f"{source}: no series could be imported ({scan.num_files} files, {len(scan.series)} series): {listing}"
        )
    return result


def write_case(
    case_dir: Path,
    volumes: dict[str, tuple[DicomSeries, DicomVolume]],
    label: sitk.Image | None,
    *,
    identifiers: dict[str, str] | None = None,
) -> ImportedCase:
    """Write one case folder: each sequence as ``<sequence>.nii.gz``, the label, then ``dicom_sources.json``.

    Args:
        case_dir: ``COHORT/cases/<case_id>`` (created).
        volumes: sequence -> (series, volume read from it).
        label: a mask on the T2 grid, or ``None``.
        identifiers: put on the returned record (``keep_identifiers``).
    """
    case_dir = Path(case_dir)
    sources: dict[str, dict[str, Any]] = {}
    for sequence in SEQUENCES:
        if sequence not in volumes:
            continue
        series, volume = volumes[sequence]
        write_image(volume.image, case_dir / f"{sequence}.nii.gz")
        sources[sequence] = {
            "series_instance_uid": series.series_instance_uid,
            "study_instance_uid": series.study_instance_uid,
            "frame_of_reference_uid": series.frame_of_reference_uid,
            "files": [str(path) for path in volume.geometry.files],
        }
    if label is not None:
        write_image(sitk.Cast(label, sitk.sitkUInt8), case_dir / "label.nii.gz")
    atomic_write_text(case_dir / SOURCES_FILENAME, json.dumps(sources, indent=1) + "\n")
    return ImportedCase(
        case_id=case_dir.name,
        sequences={sequence: volumes[sequence][0].label for sequence in sources},
        has_label=label is not None,
        identifiers=dict(identifiers or {}),
    )


def _choose_series(
    members: list[DicomSeries], rules: SequenceMapping
) -> tuple[dict[str, tuple[DicomSeries, DicomVolume]], list[tuple[str, str]]]:
    """The series read for each sequence of one study, and ``(series label, reason)`` for the others."""
    candidates: dict[str, list[DicomSeries]] = {}
    skipped: list[tuple[str, str]] = []
    for series in members:
        decision = map_series(series, rules)
        if decision.sequence is None:
            skipped.append((series.label, decision.reason))
        else:
            logger.debug("%s -> %s (%s)", series.label, decision.sequence, decision.reason)
            candidates.setdefault(decision.sequence, []).append(series)
    chosen: dict[str, tuple[DicomSeries, DicomVolume]] = {}
    for sequence in SEQUENCES:
        for series in rank_candidates(candidates.get(sequence, []), rules):
            if sequence in chosen:
                skipped.append((series.label, f"maps to {sequence}, but {chosen[sequence][0].label} was preferred"))
                continue
            try:
                chosen[sequence] = (series, read_series(series))
            except ValueError as error:
                skipped.append((series.label, f"maps to {sequence} but cannot be read: {error}"))
    return chosen, skipped


def _imported_studies(cases_folder: Path) -> dict[str, str]:
    """Study UID -> case id of the cases already in the cohort that were imported from DICOM."""
    known: dict[str, str] = {}
    if not cases_folder.is_dir():
        return known
    for record in sorted(cases_folder.glob(f"*/{SOURCES_FILENAME}")):
        try:
            sources = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for entry in sources.values() if isinstance(sources, dict) else []:
            if isinstance(entry, dict) and entry.get("study_instance_uid"):
                known.setdefault(str(entry["study_instance_uid"]), record.parent.name)
    return known


def _new_case_id(used: set[str], prefix: str, patient_id: str, study_date: str, keep_identifiers: bool) -> str:
    lowered = {case_id.lower() for case_id in used}
    if keep_identifiers and patient_id:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{patient_id}_{study_date}" if study_date else patient_id)
        base = base.strip("_.-")[:56] or prefix
        candidate, number = base, 1
        while candidate.lower() in lowered or not CASE_ID_PATTERN.fullmatch(candidate):
            candidate, number = f"{base}-{number}", number + 1
        return candidate
    number = 0
    while f"{prefix}-{number:03d}".lower() in lowered:
        number += 1
    return f"{prefix}-{number:03d}"


def _label_of(
    case_id: str,
    chosen: dict[str, tuple[DicomSeries, DicomVolume]],
    rtstructs: Sequence[Path],
    roi_names: Sequence[str],
    notes: list[str],
) -> sitk.Image | None:
    """The label from the first RTSTRUCT referencing this case's series, rasterised on the T2 grid."""
    by_series = {series.series_instance_uid: sequence for sequence, (series, _) in chosen.items()}
    by_instance = {
        header.sop_instance_uid: sequence for sequence, (series, _) in chosen.items() for header in series.slices
    }
    referencing = []
    for path in rtstructs:
        series_uids, instance_uids = _rtstruct_references(path)
        sequences = {by_series[uid] for uid in series_uids if uid in by_series}
        sequences |= {by_instance[uid] for uid in instance_uids if uid in by_instance}
        if sequences:
            referencing.append((LABEL_SEQUENCE not in sequences, path.name, path, sorted(sequences)))
    if not referencing:
        return None
    referencing.sort()
    if len(referencing) > 1:
        notes.append(
            f"{case_id}: {len(referencing)} RTSTRUCTs reference this study; used the first ({referencing[0][1]})"
        )
    _, name, path, referenced = referencing[0]
    if LABEL_SEQUENCE not in chosen:
        notes.append(f"{case_id}: RTSTRUCT {name} not used: the label lies on the T2 grid and the study has no T2")
        return None
    t2_series, t2_volume = chosen[LABEL_SEQUENCE]
    frames = {chosen[sequence][0].frame_of_reference_uid for sequence in referenced}
    if LABEL_SEQUENCE not in referenced and frames != {t2_series.frame_of_reference_uid}:
        notes.append(f"{case_id}: RTSTRUCT {name} references {referenced}, not in T2's frame of reference; not used")
        return None
    from npcseg.dicom.rtstruct import read_rtstruct

    try:
        label = read_rtstruct(path, t2_volume.image, list(roi_names), display_name=f"RTSTRUCT {name}")
    except ValueError as error:
        message = str(error).replace(str(path), f"RTSTRUCT {name}")
        notes.append(f"{case_id}: no label: {message}")
        return None
    num_voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(label)))
    logger.info("%s: label from RTSTRUCT %s (%d voxels)", case_id, name, num_voxels)
    return label


def _rtstruct_references(path: Path) -> tuple[set[str], set[str]]:
    """Series UIDs and image SOP instance UIDs an RTSTRUCT references."""
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError):
        return set(), set()
    series_uids: set[str] = set()
    instance_uids: set[str] = set()
    for frame in dataset.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                series_uids.add(str(series.get("SeriesInstanceUID", "")))
                instance_uids |= {
                    str(item.get("ReferencedSOPInstanceUID", "")) for item in series.get("ContourImageSequence", [])
                }
    for roi in dataset.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            for item in contour.get("ContourImageSequence", []):
                instance_uids.add(str(item.get("ReferencedSOPInstanceUID", "")))
    return series_uids, instance_uids
