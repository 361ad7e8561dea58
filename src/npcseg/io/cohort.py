"""The cohort layout: ``COHORT/cases/<case_id>/{t1,t2,t1c,label}.<ext>`` plus an optional ``COHORT/clinical.csv``.

Each sequence is one image file named after the sequence (``t1``, ``t2``, optional ``t1c``) with any of the
endings in :data:`npcseg.io.images.IMAGE_SUFFIXES`; each may have its own grid. The optional ``label`` lies on
the reference sequence's grid (T2 by default). ``clinical.csv`` holds one row per case: ``case_id`` followed by
covariates (sex, age, t_category, chemotherapy, centre, scanner, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from npcseg.io.images import find_image

SEQUENCES: tuple[str, ...] = ("t1", "t2", "t1c")
"""Sequence names a case folder may hold."""
LABEL_STEM = "label"
CASES_DIRNAME = "cases"
CLINICAL_FILENAME = "clinical.csv"
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" would accept a final newline
"""A case id: letters, digits, ``_``, ``.``, ``-``; starts with a letter or digit; at most 64 characters."""


@dataclass(frozen=True)
class Case:
    """One patient's files.

    Attributes:
        case_id: the folder name.
        folder: the case folder.
        images: sequence name -> image file, for the sequences present.
        label: the label file, or ``None``.
    """

    case_id: str
    folder: Path
    images: dict[str, Path] = field(default_factory=dict)
    label: Path | None = None

    def image(self, sequence: str) -> Path:
        """The file of ``sequence``; ``FileNotFoundError`` naming the case folder when it is missing."""
        if sequence not in self.images:
            raise FileNotFoundError(
                f"{self.folder}: sequence '{sequence}' is missing (expected {sequence}.nii.gz or another of "
                f"the accepted endings); present: {sorted(self.images) or 'none'}"
            )
        return self.images[sequence]

    def require(self, sequences: tuple[str, ...] | list[str]) -> None:
        """Raise ``FileNotFoundError`` listing every sequence of ``sequences`` this case lacks."""
        missing = [sequence for sequence in sequences if sequence not in self.images]
        if missing:
            raise FileNotFoundError(
                f"{self.folder}: missing sequence(s) {missing} needed here; present: {sorted(self.images) or 'none'}"
            )


def load_case(folder: Path) -> Case:
    """Collect the image files of one case folder (the first matching ending wins; validation reports doubles)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: case folder not found")
    images = {}
    for sequence in SEQUENCES:
        found = find_image(folder, sequence)
        if found:
            images[sequence] = found[0]
    labels = find_image(folder, LABEL_STEM)
    return Case(case_id=folder.name, folder=folder, images=images, label=labels[0] if labels else None)


def cases_dir(cohort: Path) -> Path:
    """``COHORT/cases``; ``FileNotFoundError`` when the cohort does not have one."""
    cohort = Path(cohort)
    if not cohort.is_dir():
        raise FileNotFoundError(f"{cohort}: cohort folder not found")
    folder = cohort / CASES_DIRNAME
    if not folder.is_dir():
        raise FileNotFoundError(f"{cohort}: not a cohort (no '{CASES_DIRNAME}/' folder inside)")
    return folder


def discover_cases(cohort: Path) -> list[Case]:
    """All cases of a cohort, sorted by case id."""
    return [load_case(folder) for folder in sorted(cases_dir(cohort).iterdir()) if folder.is_dir()]


def is_cohort(path: Path) -> bool:
    """True when ``path`` is a cohort folder (has ``cases/``) rather than a single case folder."""
    return (Path(path) / CASES_DIRNAME).is_dir()


def cases_of(path: Path) -> list[Case]:
    """The cases of a cohort folder, or the single case when ``path`` is a case folder."""
    return discover_cases(path) if is_cohort(path) else [load_case(path)]
