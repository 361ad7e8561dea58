"""The report's data model: scored cases, training logs and what one results folder contributes.

Filled by :mod:`npcseg.report.sources` from a results folder; drawn by :mod:`npcseg.report.builder`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ReportKind = Literal["crossvalidation", "experiment", "evaluation", "training_run"]


@dataclass(frozen=True)
class CaseResult:
    """One scored prediction of one case.

    Attributes:
        group: the fold (``fold 0``), model (``T1+T2``) or cohort the case was scored in.
        case_id: the case id.
        metrics: metric name -> value (``nan`` when missing), from ``metrics.csv``.
        prediction: the predicted mask file on the case's original T2 grid, or ``None`` when not found.
        images: sequence name (``t1``, ``t2``) -> image file of the case, for the overlays (may be empty).
        label: the reference mask file, or ``None`` when the case's files are unknown.
        t1_registration: the saved rigid transform of T1 onto T2 (``describe_transform`` form: ``class``,
            ``parameters``, ``center_mm``; T2 physical -> T1 physical points), or ``None`` when none is known.
    """

    group: str
    case_id: str
    metrics: dict[str, float]
    prediction: Path | None = None
    images: dict[str, Path] = field(default_factory=dict)
    label: Path | None = None
    t1_registration: dict[str, Any] | None = None

    @property
    def dice(self) -> float:
        """The case's Dice (``nan`` when absent)."""
        return self.metrics.get("dice", math.nan)

    @property
    def can_overlay(self) -> bool:
        """True when the prediction, the label and the T2 image are all known files."""
        return (
            self.prediction is not None
            and self.prediction.is_file()
            and self.label is not None
            and self.label.is_file()
            and "t2" in self.images
        )


@dataclass(frozen=True)
class TrainingLog:
    """One training run's ``log.csv``.

    Attributes:
        figure: the learning-curve figure it belongs to (all folds of one cross-validation share one).
        name: the curve's name (``fold 0``).
        path: the file.
        rows: one dict per finished epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_dice``, ...), floats.
    """

    figure: str
    name: str
    path: Path
    rows: list[dict[str, float]]


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, whatever folder it came from.

    Attributes:
        kind: the folder's kind.
        folder: the folder read.
        title: the report's title.
        cases: every scored case (a case appears once per group it was scored in).
        groups: group names in display order (folds, models or cohorts).
        group_label: what a group is (``fold``, ``model``, ``cohort``), the per-case table's column title.
        pooled_groups: groups pooled into the summary's "all" row (empty: no pooled row, e.g. models).
        pooled_label: the title of that row.
        overlay_groups: groups whose cases compete for the worst / best overlays.
        logs: the training logs found.
        facts: ``(name, value)`` lines of the overview.
        notes: things the reader should know (unfinished arms, missing images, ...).
        preformatted: extra text shown verbatim (the experiment's ``table.md``), or ``None``.
    """

    kind: ReportKind
    folder: Path
    title: str
    cases: tuple[CaseResult, ...] = ()
    groups: tuple[str, ...] = ()
    group_label: str = "fold"
    pooled_groups: tuple[str, ...] = ()
    pooled_label: str = "all"
    overlay_groups: tuple[str, ...] = ()
    logs: tuple[TrainingLog, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    preformatted: str | None = None

    def with_cases(self, cases: list[CaseResult], group: str, *, overlay: bool = True) -> ReportData:
        """A copy with ``cases`` added as a further group (e.g. the demo's new patient), not pooled.

        Args:
            cases: the cases; their ``group`` is replaced by ``group``.
            group: the new group's name (must be new).
            overlay: let these cases compete for the worst / best overlays.
        """
        if group in self.groups:
            raise ValueError(f"group {group!r} already exists in the report of {self.folder}")
        added = tuple(replace(case, group=group) for case in cases)
        return replace(
            self,
            cases=self.cases + added,
            groups=(*self.groups, group),
            overlay_groups=(*self.overlay_groups, group) if overlay else self.overlay_groups,
        )


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv``: ``case_id`` (and ``fold``) as text, every other column as float (``nan``
    for empty cells).

    Raises:
        ValueError: no ``case_id`` column, or a cell that is not a number.
    """
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "case_id" not in reader.fieldnames:
            raise ValueError(f"{path}: not a metrics table (no 'case_id' column)")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = {"case_id": raw["case_id"], "fold": (raw.get("fold") or "").strip()}
            for key, text in raw.items():
                if key in ("case_id", "fold") or key is None:
                    continue
                try:
                    row[key] = float(text) if text not in (None, "") else math.nan
                except ValueError as error:
                    raise ValueError(f"{path}: line {line}, column {key!r}: {text!r} is not a number") from error
            rows.append(row)
    return rows


def read_log_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a training ``log.csv`` as floats (empty cells ``nan``); a trailing partial line is skipped."""
    rows = []
    with Path(path).open(newline="") as handle:
        for raw in csv.DictReader(handle):
            try:
                rows.append({key: float(value) if value else math.nan for key, value in raw.items() if key})
            except (TypeError, ValueError):
                continue
    return rows
