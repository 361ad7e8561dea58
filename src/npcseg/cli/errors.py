"""Turning user errors into a clear message and a non-zero exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

error_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print ``FileNotFoundError`` / ``ValueError`` as ``error: ...`` and exit with status 2."""
    try:
        yield
    except (FileNotFoundError, ValueError) as error:
        error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from error
