"""`npcseg demo` (being written)."""

from __future__ import annotations


def demo_command() -> None:
    """Not written yet."""
    raise NotImplementedError
