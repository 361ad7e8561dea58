"""`npcseg preprocess` (being written)."""

from __future__ import annotations


def preprocess_command() -> None:
    """Not written yet."""
    raise NotImplementedError
