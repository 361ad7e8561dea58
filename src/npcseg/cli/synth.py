"""`npcseg synth` (being written)."""

from __future__ import annotations


def synth_command() -> None:
    """Not written yet."""
    raise NotImplementedError
