"""`npcseg register` (being written)."""

from __future__ import annotations


def register_command() -> None:
    """Not written yet."""
    raise NotImplementedError
