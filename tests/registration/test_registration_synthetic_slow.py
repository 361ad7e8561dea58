"""Full-size synthetic cases (T2 0.48 mm, T1 / T1c 0.93 mm, 4 mm slices): the default is sub-millimetre."""

from __future__ import annotations

from pathlib import Path

import pytest

from npcseg.registration.cohort import evaluate_tre, register_cohort, summarize_tre
from npcseg.registration.config import RegistrationConfig

NUM_CASES = 3


@pytest.mark.slow
def test_default_is_sub_millimetre_on_full_size_synthetic_cases(tmp_path: Path) -> None:
    from npcseg.synth import synthesize_cohort

    cohort = tmp_path / "cohort"
    synthesize_cohort(cohort, num_cases=NUM_CASES, seed=1, num_workers=2)
    out = tmp_path / "registrations"
    records = register_cohort(cohort, out, RegistrationConfig(), num_workers=2, progress=False)
    assert len(records) == 2 * NUM_CASES
    for region in ("head", "label"):
        rows = evaluate_tre(cohort, out, region=region)
        assert len(rows) == 2 * NUM_CASES
        for row in rows:
            assert row["mean_mm"] < 1.0, row
            assert row["max_mm"] < 1.5, row
        assert summarize_tre(rows)["all"]["mean_mm"] < 0.6
