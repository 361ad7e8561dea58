"""Parsing shared by several commands' options."""

from __future__ import annotations

from typing import overload


@overload
def comma_list(text: str) -> list[str]: ...
@overload
def comma_list(text: None) -> None: ...
def comma_list(text: str | None) -> list[str] | None:
    """The items of a comma-separated option (``"a, b,,c"`` -> ``["a", "b", "c"]``); ``None`` stays ``None``."""
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]
