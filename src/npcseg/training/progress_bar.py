"""The trainer's rich progress bar: optimiser steps of the whole run, with the epoch, loss and validation Dice."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

__all__ = ["progress_bar"]


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, completed: int) -> Iterator[tuple[Any, Any]]:
    """A rich progress bar over ``total`` steps, ``completed`` of them already done; yields ``(bar, task)``.

    Update it with ``bar.update(task, advance=1, loss=..., epoch=...)`` and ``bar.update(task, val_dice=...)``.
    Disabled (``enabled`` False), it draws nothing but takes the same updates.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("train epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("val Dice {task.fields[val_dice]:.3f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task("steps", total=total, completed=completed, epoch=1, loss=math.nan, val_dice=math.nan)
        yield bar, task
