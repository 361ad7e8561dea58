"""`npcseg validate` (being written)."""

from __future__ import annotations


def validate_command() -> None:
    """Not written yet."""
    raise NotImplementedError
