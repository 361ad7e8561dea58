"""The report's charts: per-group box plots of the case metrics and learning curves from ``log.csv`` files.

Figures are built on :class:`matplotlib.figure.Figure` directly (no ``pyplot`` state, Agg rendering), and encoded
as PNG without the text chunks matplotlib adds (they carry a web address).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from npcseg.report.model import CaseResult, TrainingLog

BOX_METRICS: tuple[tuple[str, str], ...] = (
    ("dice", "Dice"),
    ("sensitivity", "Sensitivity"),
    ("precision", "Precision"),
    ("hd95_mm", "HD95 (mm)"),
)
"""Metrics of the box plots: ``(metrics.csv column, axis title)``; the first is always drawn when present."""
UNIT_INTERVAL_METRICS = ("dice", "sensitivity", "precision", "surface_dice", "conformity")


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (no metadata text)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def metric_boxplots(cases: Sequence[CaseResult], groups: Sequence[str], group_label: str) -> Figure:
    """Box plots of each :data:`BOX_METRICS` metric present, one box per group, every case drawn as a dot.

    Boxes: median, quartiles, whiskers at 1.5 IQR (matplotlib's default); non-finite values are left out and
    the number of cases drawn is given under each box. Dots are spread horizontally by a fixed pseudo-random
    jitter (seed 0), so the figure is reproducible.
    """
    from matplotlib.figure import Figure

    present = [(name, title) for name, title in BOX_METRICS if any(name in case.metrics for case in cases)]
    if not present:
        present = [BOX_METRICS[0]]
    figure = Figure(figsize=(max(4.0, 1.0 + 0.9 * len(groups)) * len(present) / 1.6, 3.6), layout="constrained")
    axes = figure.subplots(1, len(present), squeeze=False)[0]
    rng = np.random.default_rng(0)
    for axis, (name, title) in zip(axes, present, strict=True):
        values = []
        for group in groups:
            array = np.array([case.metrics.get(name, math.nan) for case in cases if case.group == group], float)
            values.append(array[np.isfinite(array)])
        positions = np.arange(1, len(groups) + 1)
        drawn = [index for index, array in enumerate(values) if array.size]
        if drawn:
            axis.boxplot(
                [values[index] for index in drawn],
                positions=positions[drawn],
                widths=0.6,
                showfliers=False,
                medianprops={"color": "black"},
            )
        for position, array in zip(positions, values, strict=True):
            jitter = rng.uniform(-0.15, 0.15, size=array.size)
            axis.plot(position + jitter, array, "o", color="tab:blue", alpha=0.6, markersize=3.5)
        axis.set_xticks(positions, [f"{group}\n(n={array.size})" for group, array in zip(groups, values, strict=True)])
        axis.tick_params(axis="x", labelsize=7, rotation=0)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel(group_label, fontsize=8)
        axis.grid(axis="y", alpha=0.3)
        if name in UNIT_INTERVAL_METRICS:
            low = min([float(array.min()) for array in values if array.size], default=0.0)
            axis.set_ylim(max(0.0, low - 0.05), 1.01)
    return figure


def learning_curves(logs: Sequence[TrainingLog], title: str) -> Figure:
    """Two panels per set of runs: training (solid) and validation (dashed) loss, and validation Dice, against
    the epoch; one colour per run, the epoch of best validation Dice marked with a star."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.4), layout="constrained")
    loss_axis, dice_axis = figure.subplots(1, 2)
    colours = [f"C{index % 10}" for index in range(len(logs))]
    for log, colour in zip(logs, colours, strict=True):
        if not log.rows:
            continue
        epochs = np.array([row.get("epoch", math.nan) for row in log.rows])
        for key, style, suffix in (("train_loss", "-", "train"), ("val_loss", "--", "val")):
            series = np.array([row.get(key, math.nan) for row in log.rows])
            if np.isfinite(series).any():
                loss_axis.plot(epochs, series, style, color=colour, label=f"{log.name} {suffix}", linewidth=1.2)
        dice = np.array([row.get("val_dice", math.nan) for row in log.rows])
        if np.isfinite(dice).any():
            dice_axis.plot(epochs, dice, "-", color=colour, label=log.name, linewidth=1.2)
            best = int(np.nanargmax(dice))
            dice_axis.plot(epochs[best], dice[best], "*", color=colour, markersize=9)
    loss_axis.set_title("loss (solid: training, dashed: validation)", fontsize=9)
    dice_axis.set_title("validation Dice (star: best epoch)", fontsize=9)
    for axis in (loss_axis, dice_axis):
        axis.set_xlabel("epoch", fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    if any(log.rows for log in logs):
        dice_axis.legend(fontsize=7, loc="lower right", ncols=2)
    else:
        loss_axis.text(0.5, 0.5, "no finished epoch yet", ha="center", transform=loss_axis.transAxes)
    figure.suptitle(title, fontsize=10)
    return figure
