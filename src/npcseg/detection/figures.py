"""Figures of the detector: one episode drawn on its slice, and the training curves of several runs.

Figures are built on :class:`matplotlib.figure.Figure` directly (no ``pyplot`` state; Agg rendering) and written as
PNG atomically.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npcseg.detection.boxes import ACTIONS, Box
from npcseg.io.atomic import atomic_write_bytes
from npcseg.report.figures import figure_png

TARGET_COLOUR = "#e4002b"


def _slice_to_show(image: np.ndarray, channel: int | None) -> np.ndarray:
    """The 2D slice drawn: ``image`` itself when 2D, else its channel ``channel`` (default: the last, T2 in the
    SeqSeg order t1, t1c, t2)."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        return array
    if array.ndim != 3:
        raise ValueError(f"expected an image (C, H, W) or (H, W), got shape {array.shape}")
    return array[array.shape[0] - 1 if channel is None else channel]


def plot_episode(
    image: np.ndarray,
    boxes: Sequence[Box],
    actions: Sequence[int],
    target: Box | None,
    path: Path,
    *,
    channel: int | None = None,
    title: str | None = None,
) -> None:
    """Draw one episode: the slice in grey, the box after each action on a colour ramp, the target box in red.

    Args:
        image: the slice, ``(C, H, W)`` or ``(H, W)``, any intensity range (drawn min-max).
        boxes: the start box followed by the box after each action (``len(actions) + 1`` boxes).
        actions: the action indices taken (names from :data:`npcseg.detection.boxes.ACTIONS`).
        target: the ground-truth box, or ``None`` when there is none.
        path: the PNG written.
        channel: channel of a 3D ``image`` drawn (default: the last one).
        title: figure title (default: the number of steps).

    Raises:
        ValueError: when the number of boxes is not ``len(actions) + 1`` or the image is not 2D / 3D.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if len(boxes) != len(actions) + 1:
        raise ValueError(f"an episode of {len(actions)} actions needs {len(actions) + 1} boxes, got {len(boxes)}")
    shown = _slice_to_show(image, channel)
    figure = Figure(figsize=(8.0, 5.0), layout="constrained")
    image_axis, text_axis = figure.subplots(1, 2, gridspec_kw={"width_ratios": [5, 2.4]})
    image_axis.imshow(shown, cmap="gray", interpolation="nearest")
    image_axis.set_axis_off()
    ramp = colormaps["viridis"]
    colours = [ramp(step / max(len(boxes) - 1, 1)) for step in range(len(boxes))]
    for step, (box, colour) in enumerate(zip(boxes, colours, strict=True)):
        corner = (box.left - 0.5, box.top - 0.5)  # pixel centres are at integer coordinates in imshow
        style = "--" if step == 0 else "-"
        image_axis.add_patch(
            Rectangle(corner, box.width, box.height, fill=False, edgecolor=colour, linewidth=1.2, linestyle=style)
        )
        image_axis.text(corner[0] + 0.5, corner[1] + 0.5, str(step), color=colour, fontsize=7, va="top", ha="left")
    if target is not None:
        image_axis.add_patch(
            Rectangle(
                (target.left - 0.5, target.top - 0.5),
                target.width,
                target.height,
                fill=False,
                edgecolor=TARGET_COLOUR,
                linewidth=1.6,
            )
        )
    text_axis.set_axis_off()
    lines: list[tuple[str, Any]] = [("0  start box (dashed)", colours[0])]
    lines += [(f"{step}  {ACTIONS[action]}", colours[step]) for step, action in enumerate(actions, start=1)]
    if target is not None:
        lines.append(("target box", TARGET_COLOUR))
    spacing = min(0.06, 0.95 / max(len(lines), 1))
    for row, (text, colour) in enumerate(lines):
        text_axis.text(0.0, 0.98 - row * spacing, text, color=colour, fontsize=8, va="top", family="monospace")
    figure.suptitle(title or f"episode of {len(actions)} step(s)", fontsize=10)
    atomic_write_bytes(Path(path), figure_png(figure, dpi=110))


def read_training_log(path: Path) -> dict[str, np.ndarray]:
    """The columns of a detector ``log.csv`` as float arrays (empty cells and ``nan`` read as ``nan``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training log not found")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = rows[0].keys() if rows else []
    return {
        column: np.asarray([float(row[column]) if row[column] not in ("", None) else math.nan for row in rows])
        for column in columns
    }


def plot_convergence(logs: Mapping[str, Path], path: Path, *, validation_column: str = "val_recall_mean") -> None:
    """Loss per epoch of several detector runs in one panel, and their validation recall per epoch in a second
    panel when any log has one (the exploration ablation's convergence figure).

    Args:
        logs: run name -> its ``log.csv`` (columns ``epoch`` and ``loss``, optionally ``validation_column``).
        path: the PNG written.
        validation_column: the column drawn in the second panel.
    """
    from matplotlib.figure import Figure

    if not logs:
        raise ValueError("plot_convergence needs at least one log")
    tables = {name: read_training_log(log) for name, log in logs.items()}
    has_validation = any(np.isfinite(table.get(validation_column, np.array([]))).any() for table in tables.values())
    figure = Figure(figsize=(9.0 if has_validation else 5.0, 3.6), layout="constrained")
    axes = figure.subplots(1, 2 if has_validation else 1, squeeze=False)[0]
    for name, table in tables.items():
        epochs = table.get("epoch", np.array([])) + 1  # epochs drawn 1-based
        axes[0].plot(epochs, table.get("loss", np.full(epochs.shape, math.nan)), marker="o", markersize=3, label=name)
        if has_validation:
            values = table.get(validation_column, np.full(epochs.shape, math.nan))
            axes[1].plot(epochs, values, marker="o", markersize=3, label=name)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("mean L1 loss of the Q-network")
    axes[0].set_title("training loss")
    axes[0].legend(fontsize=8)
    if has_validation:
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("recall")
        axes[1].set_ylim(0.0, 1.02)
        axes[1].set_title("validation recall (greedy, mean)")
        axes[1].legend(fontsize=8)
    atomic_write_bytes(Path(path), figure_png(figure, dpi=110))
