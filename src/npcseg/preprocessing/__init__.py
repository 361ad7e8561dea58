"""Pre-processing (METHODS.md method 1, steps 1-4): onto one grid per case, normalise, pad / crop to S x S,
and the exact way back to the original T2 grid."""

from __future__ import annotations

from npcseg.preprocessing.cache import list_preprocessed, load_preprocessed, preprocess_cohort
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.preprocessing.pipeline import PreprocessedCase, preprocess_case, to_original_grid

__all__ = [
    "PreprocessedCase",
    "PreprocessingConfig",
    "list_preprocessed",
    "load_preprocessed",
    "preprocess_case",
    "preprocess_cohort",
    "to_original_grid",
]
