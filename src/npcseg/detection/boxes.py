"""Boxes on a slice and the detector's 11 actions (SeqSeg, instance level; METHODS.md, method 2).

A :class:`Box` is continuous, in pixel units of the slice it lives on: rows ``[top, bottom)``, columns
``[left, right)``; ``(0, 0)`` is the top-left corner of the first pixel. Boxes move by fractions of their own size,
so they are kept as floats; :meth:`Box.pixel_bounds` gives the integer window that covers one.

Actions (indices fixed; the paper's figure of the six zooms is lost, so we use the reading of METHODS.md): 0-3 shrink
to ``zoom`` (3/4) of the size keeping the top-left, top-right, bottom-left or bottom-right corner; 4 shrinks the
width only and 5 the height only, both centred; 6-9 shift up, down, left, right by ``shift`` (1/4) of the box's own
height or width; 10 is the terminal action. A box never leaves the image: a shift stops at the border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTIONS: tuple[str, ...] = (
    "zoom_top_left",
    "zoom_top_right",
    "zoom_bottom_left",
    "zoom_bottom_right",
    "zoom_width",
    "zoom_height",
    "shift_up",
    "shift_down",
    "shift_left",
    "shift_right",
    "terminal",
)
"""Action names by index."""
NUM_ACTIONS = len(ACTIONS)
ZOOM_ACTIONS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
SHIFT_ACTIONS: tuple[int, ...] = (6, 7, 8, 9)
TERMINAL_ACTION = 10


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in (continuous) pixel coordinates: rows ``[top, bottom)``, columns ``[left, right)``."""

    top: float
    left: float
    bottom: float
    right: float

    def __post_init__(self) -> None:
        if not (self.bottom > self.top and self.right > self.left):
            raise ValueError(f"a box needs bottom > top and right > left, got {self}")

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def area(self) -> float:
        return self.height * self.width

    @property
    def centre(self) -> tuple[float, float]:
        """(row, column) of the centre."""
        return (self.top + self.bottom) / 2, (self.left + self.right) / 2

    @property
    def diagonal(self) -> float:
        return math.hypot(self.height, self.width)

    def scaled(self, factor: float) -> Box:
        """The box ``factor`` times as tall and as wide about the same centre (SeqSeg enlarges by 1.5)."""
        row, column = self.centre
        half_height, half_width = self.height * factor / 2, self.width * factor / 2
        return Box(row - half_height, column - half_width, row + half_height, column + half_width)

    def clipped(self, shape: tuple[int, int]) -> Box:
        """The part of the box inside an image of ``shape`` (rows, columns); the box must overlap the image."""
        rows, columns = float(shape[0]), float(shape[1])
        return Box(max(self.top, 0.0), max(self.left, 0.0), min(self.bottom, rows), min(self.right, columns))

    def pixel_bounds(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` integers of the smallest pixel window covering the box, inside ``shape``,
        at least one pixel each way (use as ``image[top:bottom, left:right]``)."""
        top = min(max(math.floor(self.top + 1e-9), 0), shape[0] - 1)
        left = min(max(math.floor(self.left + 1e-9), 0), shape[1] - 1)
        bottom = max(min(math.ceil(self.bottom - 1e-9), shape[0]), top + 1)
        right = max(min(math.ceil(self.right - 1e-9), shape[1]), left + 1)
        return top, left, bottom, right

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.top, self.left, self.bottom, self.right


def intersection(a: Box, b: Box) -> float:
    """Area shared by two boxes."""
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    width = min(a.right, b.right) - max(a.left, b.left)
    return max(height, 0.0) * max(width, 0.0)


def iou(a: Box, b: Box) -> float:
    """Intersection over union."""
    shared = intersection(a, b)
    return shared / (a.area + b.area - shared)


def recall(box: Box, target: Box) -> float:
    """Fraction of ``target``'s area inside ``box`` (the paper's detection recall)."""
    return intersection(box, target) / target.area


def centre_distance(a: Box, b: Box) -> float:
    """Euclidean distance between the centres (the paper's rho)."""
    (row_a, column_a), (row_b, column_b) = a.centre, b.centre
    return math.hypot(row_a - row_b, column_a - column_b)


def box_of_mask(mask: np.ndarray) -> Box | None:
    """The box around every foreground pixel of a 2D mask (one box for all components), ``None`` if empty."""
    if mask.ndim != 2:
        raise ValueError(f"box_of_mask needs a 2D mask, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(mask.any(axis=0))
    return Box(float(rows[0]), float(columns[0]), float(rows[-1] + 1), float(columns[-1] + 1))


def initial_box(shape: tuple[int, int], fraction: float = 0.42) -> Box:
    """The start box: centred, ``fraction`` of the image's height and width (the paper: 42 %)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the start box fraction must be in (0, 1], got {fraction}")
    height, width = shape
    top, left = height * (1 - fraction) / 2, width * (1 - fraction) / 2
    return Box(top, left, height * (1 + fraction) / 2, width * (1 + fraction) / 2)


def apply_action(box: Box, action: int, shape: tuple[int, int], *, zoom: float = 0.75, shift: float = 0.25) -> Box:
    """The box after ``action`` (see the module docstring) in an image of ``shape``; the terminal action keeps it."""
    if not 0 <= action < NUM_ACTIONS:
        raise ValueError(f"action must be in 0..{NUM_ACTIONS - 1}, got {action}")
    height, width = box.height, box.width
    if action == 0:
        return Box(box.top, box.left, box.top + zoom * height, box.left + zoom * width)
    if action == 1:
        return Box(box.top, box.right - zoom * width, box.top + zoom * height, box.right)
    if action == 2:
        return Box(box.bottom - zoom * height, box.left, box.bottom, box.left + zoom * width)
    if action == 3:
        return Box(box.bottom - zoom * height, box.right - zoom * width, box.bottom, box.right)
    row, column = box.centre
    if action == 4:
        return Box(box.top, column - zoom * width / 2, box.bottom, column + zoom * width / 2)
    if action == 5:
        return Box(row - zoom * height / 2, box.left, row + zoom * height / 2, box.right)
    if action == TERMINAL_ACTION:
        return box
    # a shift stops at the border: it moves at most as far as the space left on that side
    d_row = d_column = 0.0
    if action == 6:
        d_row = -min(shift * height, max(box.top, 0.0))
    elif action == 7:
        d_row = min(shift * height, max(shape[0] - box.bottom, 0.0))
    elif action == 8:
        d_column = -min(shift * width, max(box.left, 0.0))
    else:
        d_column = min(shift * width, max(shape[1] - box.right, 0.0))
    return Box(box.top + d_row, box.left + d_column, box.bottom + d_row, box.right + d_column)
