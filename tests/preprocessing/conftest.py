"""Fixtures of the pre-processing tests (the case builders live in preprocessing_cases.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from preprocessing_cases import Built, build_case


@pytest.fixture
def make_case(tmp_path: Path) -> Callable[..., Built]:
    """Factory: ``make_case(case_id="case001", cohort=tmp_path / "cohort", **build_case options)``."""

    def factory(case_id: str = "case001", cohort: Path | None = None, **options: object) -> Built:
        root = cohort if cohort is not None else tmp_path / "cohort"
        return build_case(root / "cases" / case_id, **options)  # type: ignore[arg-type]

    return factory
