"""Results folders and one rendered report shared by the report tests (built once per session: rendering
figures is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_cases import build_cohort, build_crossvalidation, build_evaluation, build_experiment

from npcseg.report import ReportResult, build_report

NUM_SHOWN = 1
"""Worst and best cases drawn in the shared report."""


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``root``, ``cohort``, ``crossvalidation``, ``experiment``, ``evaluation`` (see report_cases)."""
    root = tmp_path_factory.mktemp("report")
    cohort = build_cohort(root)
    crossvalidation = build_crossvalidation(root, cohort)
    return {
        "root": root,
        "cohort": cohort,
        "crossvalidation": crossvalidation,
        "experiment": build_experiment(root, crossvalidation),
        "evaluation": build_evaluation(root, crossvalidation),
    }


@pytest.fixture(scope="session")
def crossvalidation_report(folders: dict[str, Path]) -> ReportResult:
    """The cross-validation's report (``NUM_SHOWN`` worst and best cases), in ``root/out/cv.html``."""
    return build_report(folders["crossvalidation"], folders["root"] / "out" / "cv.html", num_cases=NUM_SHOWN)
