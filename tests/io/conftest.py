"""Fixtures for the I/O tests (the builders live in ``io_cohort_builders.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from io_cohort_builders import CohortBuilder


@pytest.fixture
def cohort_builder(tmp_path: Path) -> CohortBuilder:
    return CohortBuilder(tmp_path / "cohort")


@pytest.fixture
def good_cohort(cohort_builder: CohortBuilder) -> CohortBuilder:
    """Two good cases with a matching clinical table."""
    cohort_builder.case("NPC001")
    cohort_builder.case("NPC002", suffix=".nrrd")
    cohort_builder.clinical("case_id,sex,age\nNPC001,M,54\nNPC002,F,61\n")
    return cohort_builder


@pytest.fixture
def truncate() -> Callable[[Path, float], Path]:
    """Cut a file down to ``fraction`` of its bytes (in place); returns the path."""

    def cut(path: Path, fraction: float = 0.6) -> Path:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return cut
