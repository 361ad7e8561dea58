"""Which cases a training run uses: the train / validation split of a cache's labelled cases, and its checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npcseg.data.dataset import channel_indices, labelled_cases
from npcseg.preprocessing.cache import list_preprocessed, load_cache_config
from npcseg.training.config import TrainingConfig

__all__ = ["check_cases", "check_disjoint_ids", "holdout_split", "resolve_case_ids"]


def holdout_split(case_ids: list[str], validation_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random split of ``case_ids`` into (train, validation), each sorted.

    ``round(validation_fraction * n)`` cases (at least 1 when the fraction is above 0 and there are 2 or more
    cases) go to validation.
    """
    ordered = sorted(case_ids)
    num_validation = round(validation_fraction * len(ordered))
    if validation_fraction > 0 and len(ordered) >= 2:
        num_validation = min(max(num_validation, 1), len(ordered) - 1)
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    validation = sorted(ordered[index] for index in permutation[:num_validation])
    return [case for case in ordered if case not in validation], validation


def resolve_case_ids(
    cache: Path, config: TrainingConfig, train_ids: list[str] | None, val_ids: list[str] | None
) -> tuple[list[str], list[str]]:
    """The (train, validation) case ids of a run from what the user gave.

    Both given: used as they are. One given: the other is every other labelled case of the cache. Neither:
    :func:`holdout_split` of the labelled cases by ``config.validation_fraction`` and ``config.seed``.

    Raises:
        FileNotFoundError: the cache folder is missing.
        ValueError: the cache holds no labelled case.
    """
    if train_ids is not None and val_ids is not None:
        return list(train_ids), list(val_ids)
    cache = Path(cache)
    if not cache.is_dir():
        raise FileNotFoundError(f"{cache}: preprocessed cache folder not found")
    labelled = labelled_cases(cache)
    if not labelled:
        raise ValueError(f"{cache}: no labelled cases in the cache")
    if train_ids is None and val_ids is None:
        return holdout_split(labelled, config.validation_fraction, config.seed)
    if train_ids is None:
        excluded = set(val_ids or [])
        return [case for case in labelled if case not in excluded], list(val_ids or [])
    chosen = set(train_ids)
    return list(train_ids), [case for case in labelled if case not in chosen]


def check_disjoint_ids(train_ids: Sequence[str], val_ids: Sequence[str]) -> None:
    """Raise ``ValueError`` when no training id is given or an id is both a training and a validation one."""
    if not train_ids:
        raise ValueError("no training case ids given")
    overlap = sorted(set(train_ids) & set(val_ids))
    if overlap:
        raise ValueError(f"case(s) {overlap} are in both the training and the validation ids")


def check_cases(cache: Path, train_ids: list[str], val_ids: list[str], config: TrainingConfig) -> None:
    """Raise ``ValueError`` unless the ids are disjoint, non-empty for training, cached, labelled, and the cache
    holds every sequence ``config`` trains on."""
    check_disjoint_ids(train_ids, val_ids)
    available = set(list_preprocessed(cache))
    missing = sorted(set(train_ids) - available) + sorted(set(val_ids) - available)
    if missing:
        raise ValueError(f"{cache}: case(s) {missing} are not in the preprocessed cache")
    labelled = set(labelled_cases(cache))
    unlabelled = sorted(set(train_ids) - labelled) + sorted(set(val_ids) - labelled)
    if unlabelled:
        raise ValueError(f"{cache}: case(s) {unlabelled} have no label; they cannot be used for training")
    channel_indices(load_cache_config(cache).sequences, config.sequences, cache)
