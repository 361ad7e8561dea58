"""Patient-level, volume-stratified folds: partition, determinism, stratification, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcseg.data.splits import Fold, load_splits, make_splits, save_splits, splits_for


def _ids(count: int) -> list[str]:
    return [f"case{index:03d}" for index in range(count)]


@given(
    volumes=st.lists(st.floats(min_value=0.0, max_value=500.0, allow_nan=False), min_size=2, max_size=40),
    num_folds=st.integers(min_value=2, max_value=12),
    seed=st.integers(min_value=0, max_value=2**31),
)
@settings(max_examples=60, deadline=None)
def test_crossval_splits_partition(volumes: list[float], num_folds: int, seed: int) -> None:
    ids = _ids(len(volumes))
    if num_folds > len(ids):
        with pytest.raises(ValueError, match="larger than the number of cases"):
            make_splits(ids, volumes, num_folds, seed)
        return
    folds = make_splits(ids, volumes, num_folds, seed)
    assert [fold.fold for fold in folds] == list(range(num_folds))
    held_out = [case_id for fold in folds for case_id in fold.val]
    assert sorted(held_out) == sorted(ids)  # every case in exactly one validation fold
    sizes = [len(fold.val) for fold in folds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    for fold in folds:
        assert set(fold.train).isdisjoint(fold.val)
        assert set(fold.train) | set(fold.val) == set(ids)
        assert list(fold.val) == sorted(fold.val) and list(fold.train) == sorted(fold.train)


def test_crossval_splits_deterministic_and_seeded() -> None:
    rng = np.random.default_rng(0)
    ids, volumes = _ids(30), list(rng.lognormal(2.5, 1.0, 30))
    assert make_splits(ids, volumes, 5, seed=7) == make_splits(ids, volumes, 5, seed=7)
    assert make_splits(ids, volumes, 5, seed=7) != make_splits(ids, volumes, 5, seed=8)
    # the order the cases are listed in does not matter
    order = rng.permutation(30)
    shuffled = make_splits([ids[i] for i in order], [volumes[i] for i in order], 5, seed=7)
    assert shuffled == make_splits(ids, volumes, 5, seed=7)


def test_crossval_splits_stratified_by_volume() -> None:
    """On a skewed (exponential) volume distribution, fold mean volumes vary far less than under random splits."""
    rng = np.random.default_rng(2)
    num_cases, num_folds = 44, 10
    ids, volumes = _ids(num_cases), rng.exponential(10.0, num_cases)
    by_id = dict(zip(ids, volumes, strict=True))

    def spread(groups: list[list[str]]) -> float:
        return float(np.std([np.mean([by_id[case_id] for case_id in group]) for group in groups]))

    stratified = np.mean(
        [spread([list(f.val) for f in make_splits(ids, volumes, num_folds, seed)]) for seed in range(20)]
    )
    random_spreads = []
    for _ in range(200):
        permutation = rng.permutation(ids)
        random_spreads.append(spread([list(part) for part in np.array_split(permutation, num_folds)]))
    assert stratified < 0.3 * np.median(random_spreads)  # measured: about 0.17
    distinct = {frozenset(frozenset(f.val) for f in make_splits(ids, volumes, num_folds, seed)) for seed in range(10)}
    assert len(distinct) == 10  # the seed still matters


def test_crossval_splits_bad_input() -> None:
    with pytest.raises(ValueError, match=r"num_folds \(6\) is larger than the number of cases \(5\)"):
        make_splits(_ids(5), [1.0] * 5, 6)
    with pytest.raises(ValueError, match="at least 2"):
        make_splits(_ids(5), [1.0] * 5, 1)
    with pytest.raises(ValueError, match="unique"):
        make_splits(["a", "a", "b"], [1.0, 2.0, 3.0], 2)
    with pytest.raises(ValueError, match="finite"):
        make_splits(_ids(3), [1.0, float("nan"), 3.0], 2)
    with pytest.raises(ValueError, match="3 case ids but 2"):
        make_splits(_ids(3), [1.0, 2.0], 2)


def test_crossval_splits_save_load_reuse(tmp_path: Path) -> None:
    ids, volumes = _ids(9), [float(v) for v in range(9)]
    path = tmp_path / "splits.json"
    folds = splits_for(path, ids, volumes, 3, seed=0)
    data = json.loads(path.read_text())
    assert data[0].keys() == {"fold", "train", "val"}
    assert load_splits(path) == folds
    # reused as saved, whatever the seed or volumes now
    assert splits_for(path, ids, [0.0] * 9, 3, seed=99) == folds
    with pytest.raises(ValueError, match=r"only in the cohort: \['case009'\]"):
        splits_for(path, [*ids, "case009"], [*volumes, 1.0], 3)
    with pytest.raises(ValueError, match="holds 3 folds but 4"):
        splits_for(path, ids, volumes, 4)


def test_crossval_splits_refuses_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps([{"fold": 0, "train": ["b"], "val": ["a"]}, {"fold": 1, "train": ["b"], "val": ["b"]}]))
    with pytest.raises(ValueError, match="training cases are not exactly"):
        load_splits(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a splits file"):
        load_splits(path)
    with pytest.raises(ValueError, match="more than one fold"):
        save_splits([Fold(0, ("b",), ("a",)), Fold(1, ("a",), ("a", "b"))], tmp_path / "x.json")
