"""Folds trained in parallel processes give the serial cross-validation, file for file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from crossval_cases import build_tiny_cohort, tiny_cv_config

from npcseg.training.crossval import run_crossvalidation


def test_parallel_folds_equal_serial_folds(tmp_path: Path) -> None:
    tiny = build_tiny_cohort(tmp_path, num_cases=4)
    config = tiny_cv_config(num_folds=2, epochs=1)  # training.num_threads = 1: the same arithmetic everywhere
    serial = run_crossvalidation(tiny.cohort, tiny.cache, tmp_path / "serial", config, progress=False)
    parallel = run_crossvalidation(
        tiny.cohort, tiny.cache, tmp_path / "parallel", config, progress=False, parallel_folds=2
    )
    assert [row["case_id"] for row in parallel.metrics] == [row["case_id"] for row in serial.metrics]
    for mine, theirs in zip(parallel.metrics, serial.metrics, strict=True):
        assert mine == pytest.approx(theirs, nan_ok=True)
    for fold in (0, 1):
        weights = torch.load(tmp_path / "parallel" / f"fold_{fold}" / "checkpoint_last.pt", weights_only=True)
        expected = torch.load(tmp_path / "serial" / f"fold_{fold}" / "checkpoint_last.pt", weights_only=True)
        for name, value in expected["model"].items():
            assert torch.equal(weights["model"][name], value), name
        for path in (tmp_path / "serial" / f"fold_{fold}" / "predictions").glob("*.nii.gz"):
            other = tmp_path / "parallel" / f"fold_{fold}" / "predictions" / path.name
            np.testing.assert_array_equal(
                sitk.GetArrayFromImage(sitk.ReadImage(str(other))), sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            )


def test_parallel_folds_must_be_positive(tmp_path: Path) -> None:
    tiny = build_tiny_cohort(tmp_path, num_cases=4)
    with pytest.raises(ValueError, match="parallel_folds"):
        run_crossvalidation(
            tiny.cohort, tiny.cache, tmp_path / "cv", tiny_cv_config(), progress=False, parallel_folds=0
        )
