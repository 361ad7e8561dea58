"""What cohort validation reports: problems (each naming its file) and a summary of every case and image.

Written by :func:`npcseg.io.validation.validate_cohort`; read by the CLI and saved as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cohort.

    Attributes:
        severity: ``"error"`` (the cohort cannot be used as it is) or ``"warning"``.
        path: the file or folder the problem is about.
        message: what is wrong, with the offending values.
        case_id: the case the problem belongs to, or ``None`` for the cohort as a whole.
    """

    severity: Severity
    path: Path
    message: str
    case_id: str | None = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "severity": self.severity,
            "path": str(self.path),
            "message": self.message,
            "case_id": self.case_id,
        }


@dataclass(frozen=True)
class ImageSummary:
    """What was read from one readable image file.

    Attributes:
        path: the file.
        size_xyz: voxels along x, y, z.
        spacing_xyz: voxel size in mm along x, y, z.
        pixel_type: SimpleITK's name of the voxel type (e.g. ``"16-bit signed integer"``).
    """

    path: Path
    size_xyz: tuple[int, ...]
    spacing_xyz: tuple[float, ...]
    pixel_type: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "path": str(self.path),
            "size_xyz": list(self.size_xyz),
            "spacing_xyz": list(self.spacing_xyz),
            "pixel_type": self.pixel_type,
        }


@dataclass(frozen=True)
class CaseSummary:
    """One case as found on disk.

    Attributes:
        case_id: the case folder name.
        folder: the case folder.
        images: sequence -> summary, for the sequences whose file could be read.
        label: summary of the label file, or ``None`` when there is none or it could not be read.
        num_tumour_voxels: label voxels equal to 1 (``None`` without a readable label).
        tumour_volume_ml: ``num_tumour_voxels`` times the voxel volume, in millilitres.
        num_errors: errors about this case.
        num_warnings: warnings about this case.
    """

    case_id: str
    folder: Path
    images: dict[str, ImageSummary]
    label: ImageSummary | None
    num_tumour_voxels: int | None
    tumour_volume_ml: float | None
    num_errors: int = 0
    num_warnings: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "case_id": self.case_id,
            "folder": str(self.folder),
            "images": {sequence: summary.to_dict() for sequence, summary in self.images.items()},
            "label": None if self.label is None else self.label.to_dict(),
            "num_tumour_voxels": self.num_tumour_voxels,
            "tumour_volume_ml": self.tumour_volume_ml,
            "num_errors": self.num_errors,
            "num_warnings": self.num_warnings,
        }


@dataclass(frozen=True)
class ValidationReport:
    """The result of :func:`validate_cohort`.

    Attributes:
        cohort: the cohort folder.
        required: sequences every case had to have.
        reference: the sequence whose grid labels must lie on.
        require_label: whether a missing label was an error.
        cases: one summary per case folder, sorted by case id.
        problems: every problem found, cohort-level ones first, then case by case, then the clinical table's.
    """

    cohort: Path
    required: tuple[str, ...]
    reference: str
    require_label: bool
    cases: tuple[CaseSummary, ...]
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems of severity ``"error"``."""
        return tuple(problem for problem in self.problems if problem.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The problems of severity ``"warning"``."""
        return tuple(problem for problem in self.problems if problem.severity == "warning")

    @property
    def is_valid(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def problems_of(self, case_id: str | None) -> tuple[Problem, ...]:
        """The problems of one case (``None``: the cohort-level ones)."""
        return tuple(problem for problem in self.problems if problem.case_id == case_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "cohort": str(self.cohort),
            "required": list(self.required),
            "reference": self.reference,
            "require_label": self.require_label,
            "is_valid": self.is_valid,
            "num_cases": len(self.cases),
            "num_errors": len(self.errors),
            "num_warnings": len(self.warnings),
            "cases": [case.to_dict() for case in self.cases],
            "problems": [problem.to_dict() for problem in self.problems],
        }
