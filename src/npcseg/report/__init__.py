"""The HTML report of a cross-validation, input experiment, evaluation or training run (``npcseg report``).

:func:`build_report` reads a results folder and writes one self-contained HTML file (every image embedded) and the
same figures as PNG files beside it; see :mod:`npcseg.report.builder` for what the page holds.
"""

from __future__ import annotations

from npcseg.report.builder import ReportResult, build_report, figures_folder, select_cases, write_report
from npcseg.report.model import CaseResult, ReportData, TrainingLog
from npcseg.report.sources import detect_kind, load_source, scored_case

__all__ = [
    "CaseResult",
    "ReportData",
    "ReportResult",
    "TrainingLog",
    "build_report",
    "detect_kind",
    "figures_folder",
    "load_source",
    "scored_case",
    "select_cases",
    "write_report",
]
