"""Where a reported case's files are: its images, label and T1 registration, from a cohort or a preprocessed cache.

Used by :mod:`npcseg.report.sources` to complete each scored case with what its overlay needs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from npcseg.io.cohort import CASES_DIRNAME, Case, load_case
from npcseg.io.images import find_image
from npcseg.report.model import CaseResult, read_metrics_csv

__all__ = ["CaseFiles", "read_json", "scored_cases"]


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is missing or holds no object.

    Raises:
        ValueError: the file is not valid JSON.
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    return data if isinstance(data, dict) else {}


class CaseFiles:
    """Finds a case's images, label and T1 registration from a cohort and / or a preprocessed cache."""

    def __init__(self, cohort: Path | None, caches: list[Path]) -> None:
        self.cohort = Path(cohort) if cohort is not None else None
        self.caches = [Path(cache) for cache in caches if (Path(cache) / CASES_DIRNAME).is_dir()]

    @property
    def known(self) -> bool:
        """Whether a cohort or a cache is there to look in."""
        return self.cohort is not None or bool(self.caches)

    def complete(self, case: CaseResult, found: Case | None = None) -> CaseResult:
        """``case`` with its images, label and T1 registration (``found``: its cohort case, when known)."""
        record = self._cache_record(case.case_id)
        images: dict[str, Path] = {}
        label: Path | None = None
        if found is None and self.cohort is not None and (self.cohort / CASES_DIRNAME / case.case_id).is_dir():
            found = load_case(self.cohort / CASES_DIRNAME / case.case_id)
        if found is not None:
            images = {name: path for name, path in found.images.items() if name in ("t1", "t2")}
            label = found.label
        elif record is not None:
            images = {name: Path(path) for name, path in record.get("files", {}).items() if name in ("t1", "t2")}
            label_file = record.get("label", {}).get("file")
            label = Path(label_file) if label_file else None
        registration = None
        if record is not None and "t1" in images:
            recorded_t1 = record.get("files", {}).get("t1")
            entry = record.get("registration", {}).get("t1", {})
            same_file = recorded_t1 is not None and Path(recorded_t1).resolve() == images["t1"].resolve()
            if same_file and entry.get("source") in ("given", "registered") and "transform" in entry:
                registration = entry["transform"]
        return replace(case, images=images, label=label, t1_registration=registration)

    def _cache_record(self, case_id: str) -> dict[str, Any] | None:
        for cache in self.caches:
            record = read_json(cache / CASES_DIRNAME / f"{case_id}.json")
            if record:
                return record
        return None


def scored_cases(metrics: Path, predictions: Path, files: CaseFiles, default_group: str) -> list[CaseResult]:
    """The cases of a ``metrics.csv`` whose masks are ``predictions/<case_id>.nii.gz``, grouped by fold when
    the table has a ``fold`` column, else all in ``default_group``. A mask may have any image ending
    (:data:`npcseg.io.images.IMAGE_SUFFIXES`)."""
    cases = []
    for row in read_metrics_csv(metrics):
        found = find_image(predictions, row["case_id"]) if predictions.is_dir() else []
        group = f"fold {row['fold']}" if row["fold"] else default_group
        values = {key: value for key, value in row.items() if key not in ("case_id", "fold")}
        case = CaseResult(group, row["case_id"], values, found[0] if found else None)
        cases.append(files.complete(case))
    return cases
