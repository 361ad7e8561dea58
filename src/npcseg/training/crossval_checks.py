"""Checks of a cross-validation's inputs: the cohort's cases, its preprocessed cache, and a prediction's grid.

Used by :mod:`npcseg.training.crossval` and :mod:`npcseg.training.external` before anything is trained or written.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from npcseg.config import config_differences, config_to_dict
from npcseg.io.cohort import Case, cases_of
from npcseg.io.volume import Grid
from npcseg.preprocessing.cache import list_preprocessed, load_cache_config

__all__ = ["check_cache", "check_same_preprocessing", "cohort_cases", "require_same_grid"]


def cohort_cases(cohort: Path, *, require_labels: bool = True) -> list[Case]:
    """The cases of a cohort, sorted by id; with ``require_labels`` every case must have a label.

    Raises:
        ValueError: no cases, or (with ``require_labels``) cases without a label, named.
    """
    cases = cases_of(Path(cohort))
    if not cases:
        raise ValueError(f"{cohort}: no cases found")
    unlabelled = [case.case_id for case in cases if case.label is None]
    if require_labels and unlabelled:
        raise ValueError(f"{cohort}: cross-validation needs a label for every case; no label in: {unlabelled}")
    return sorted(cases, key=lambda case: case.case_id)


def check_cache(cache: Path, case_ids: list[str], sequences: tuple[str, ...]) -> None:
    """Raise unless the preprocessed ``cache`` holds every sequence of ``sequences`` and every case of ``case_ids``.

    Raises:
        ValueError: a sequence the model needs is not in the cache.
        FileNotFoundError: a case is not in the cache.
    """
    cache_sequences = load_cache_config(cache).sequences
    lacking = [sequence for sequence in sequences if sequence not in cache_sequences]
    if lacking:
        raise ValueError(
            f"{cache}: the cache lacks sequence(s) {lacking} the model needs (has {list(cache_sequences)})"
        )
    missing = sorted(set(case_ids) - set(list_preprocessed(cache)))
    if missing:
        raise FileNotFoundError(
            f"{cache}: case(s) {missing} of the cohort are not in the cache; run `npcseg preprocess`"
        )


def check_same_preprocessing(cache: Path, other: Path) -> None:
    """Raise ``ValueError`` unless the cache ``other`` was pre-processed like ``cache`` (registration source
    aside), so an external cohort is normalised and resampled as the training cohort was."""
    mine, theirs = config_to_dict(load_cache_config(cache)), config_to_dict(load_cache_config(other))
    for settings in (mine, theirs):
        settings.pop("registration_source", None)
    changes = config_differences(mine, theirs)
    if changes:
        raise ValueError(
            f"{other}: pre-processed differently from the training cache {cache} ({'; '.join(changes)}); "
            f"pre-process it with --config {cache / 'preprocessing.yaml'}"
        )


def require_same_grid(prediction: sitk.Image, label: Path, cache: Path, case_id: str) -> None:
    """Raise ``ValueError`` unless ``prediction`` lies on the grid of the label file ``label`` (read header only),
    i.e. the cached case ``case_id`` was built from this cohort's images."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(label))
    reader.ReadImageInformation()
    label_grid = Grid(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    mismatch = Grid.from_image(prediction).mismatch(label_grid)
    if mismatch is not None:
        raise ValueError(
            f"{cache}: case {case_id!r} was cached from other images than {label} ({mismatch}); rebuild the cache"
        )
