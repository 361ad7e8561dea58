"""An external cohort must be pre-processed like the training cohort (same normalisation, grid, size)."""

from __future__ import annotations

import pytest

from npcseg.config import save_config
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.training.crossval_checks import check_same_preprocessing


def _cache(path, config):
    path.mkdir()
    save_config(config, path / "preprocessing.yaml")
    return path


def test_registration_source_may_differ_but_normalisation_may_not(tmp_path):
    training = PreprocessingConfig(
        sequences=("t1", "t2"), normalization="dataset_max", dataset_max={"t1": 900.0, "t2": 1200.0}
    )
    cache = _cache(tmp_path / "train", training)
    same = _cache(tmp_path / "same", training.with_changes(registration_source="identity"))
    check_same_preprocessing(cache, same)
    other = _cache(tmp_path / "other", training.with_changes(dataset_max={"t1": 900.0, "t2": 800.0}))
    with pytest.raises(ValueError, match=r"dataset_max\.t2: 1200\.0 -> 800\.0.*--config"):
        check_same_preprocessing(cache, other)
