"""The detector's reward (Algorithm 1) and its prior-knowledge action (Algorithm 2) (SeqSeg; METHODS.md, method 2).

Notation: ``b`` / ``b'`` the box before / after an action, ``g`` the ground-truth (target) box, ``rho`` the distance
between box centres (:func:`~npcseg.detection.boxes.centre_distance`), ``sign`` NumPy's sign (0 when equal).

Algorithm 1 (:func:`reward`), as written:

* shift: ``sign(rho(b, g) - rho(b', g))`` (+1 closer, -1 farther, 0 unchanged, e.g. a shift stopped by the border);
* zoom: if ``IoU(b', g) = 0`` and ``IoU(b, g) = 0`` and ``b'.height > tau_h * g.height`` and
  ``b'.width > tau_w * g.width``: ``sign(rho(b, g) - rho(b', g))``; otherwise ``sign(IoU(b', g) - IoU(b, g))``;
* terminal: ``+terminal_reward`` if ``recall(b, g) > tau_recall`` and ``IoU(b, g) > tau_iou``, else
  ``-terminal_reward`` (the paper says only "positive" / "negative"; the magnitude is a config field)
  (:func:`terminal_reward`; with ``judge_step_limit`` the environment also judges the box at the step limit so).

Algorithm 2 (:func:`prior_action`), with our readings where the paper is silent:

1. if ``rho(b, g) > tau_distance * g.diagonal``: the shift whose box has its centre closest to ``g``'s (ties: the
   smallest action index), **provided it moves the centre closer**; a shift that cannot help (stopped by the border,
   or overshooting a near target with a large box) falls through to step 2;
2. elif the box is still larger than ``g`` by the margins in either direction, read as
   ``b.height * tau_h > g.height or b.width * tau_w > g.width`` (the box is taller than ``g.height / tau_h`` or
   wider than ``g.width / tau_w``): the zoom with the highest ``IoU(b', g)`` (ties: the smallest index) among the
   zooms that **raise the IoU and keep ``recall(b', g) > tau_recall``** (a zoom that cuts away target the box holds
   is not "prior knowledge": the terminal action after it must fail); if there is none, step 3;
3. else the terminal action.

Why the two guards: on the 417 tumour slices of the 30-patient synthetic cache (128 x 128, median target 14 x 13
pixels), following the literal rule (always a shift when far, always the best-IoU zoom) ends in a successful
terminal action on 0 % of them (shifts of a quarter of a large box overshoot a near target back and forth);
with the "must help" guards only, on 12.7 % (the best-IoU zoom often cuts the target); with the recall guard as
well, on 78.9 % (the rest: targets too small to reach in 15 steps, or wider than the start box).

So the prior never takes a move whose Algorithm-1 reward would be 0 or negative; only its terminal action may fail.
"""

from __future__ import annotations

import numpy as np

from npcseg.detection.boxes import (
    SHIFT_ACTIONS,
    TERMINAL_ACTION,
    ZOOM_ACTIONS,
    Box,
    apply_action,
    centre_distance,
    iou,
    recall,
)
from npcseg.detection.config import DetectorConfig, RewardConfig


def _sign(value: float) -> float:
    return float(np.sign(value))


def terminal_reward(box: Box, target: Box, config: RewardConfig) -> float:
    """``+terminal_reward`` if ``recall(box, g) > tau_recall`` and ``IoU(box, g) > tau_iou``, else minus it."""
    success = recall(box, target) > config.tau_recall and iou(box, target) > config.tau_iou
    return config.terminal_reward if success else -config.terminal_reward


def reward(before: Box, after: Box, action: int, target: Box, config: RewardConfig) -> float:
    """Algorithm 1: the reward of taking ``action``, which moved the box from ``before`` to ``after``.

    Args:
        before: the box ``b`` before the action.
        after: the box ``b'`` after it (equal to ``before`` for the terminal action).
        action: the action's index (see :data:`~npcseg.detection.boxes.ACTIONS`).
        target: the ground-truth box ``g`` of the slice.
        config: the thresholds.

    Returns:
        -1, 0 or +1 for a move; ``+-config.terminal_reward`` for the terminal action.

    Raises:
        ValueError: ``action`` is not one of the 11 actions.
    """
    if action == TERMINAL_ACTION:
        return terminal_reward(before, target, config)
    distance_gain = centre_distance(before, target) - centre_distance(after, target)
    if action in SHIFT_ACTIONS:
        return _sign(distance_gain)
    if action in ZOOM_ACTIONS:
        iou_before, iou_after = iou(before, target), iou(after, target)
        still_large = after.height > config.tau_h * target.height and after.width > config.tau_w * target.width
        if iou_after == 0 and iou_before == 0 and still_large:
            return _sign(distance_gain)
        return _sign(iou_after - iou_before)
    raise ValueError(f"action must be in 0..{TERMINAL_ACTION}, got {action}")


def is_larger_than_target(box: Box, target: Box, config: RewardConfig) -> bool:
    """Whether ``box`` is still larger than ``target`` by the margins (Algorithm 2's zoom condition, our reading):
    ``box.height * tau_h > target.height or box.width * tau_w > target.width``."""
    return box.height * config.tau_h > target.height or box.width * config.tau_w > target.width


def prior_action(box: Box, target: Box, shape: tuple[int, int], config: DetectorConfig) -> int:
    """Algorithm 2: the prior-knowledge action for ``box`` on a slice of ``shape`` (rows, columns) with ``target``.

    See the module docstring for the exact rule and its tie-breaking. Moves use ``config.zoom`` / ``config.shift``.
    """
    thresholds = config.reward
    distance = centre_distance(box, target)
    if distance > thresholds.tau_distance * target.diagonal:
        moved = [
            centre_distance(apply_action(box, action, shape, zoom=config.zoom, shift=config.shift), target)
            for action in SHIFT_ACTIONS
        ]
        best = int(np.argmin(moved))  # first minimum: smallest action index on ties
        if moved[best] < distance:
            return SHIFT_ACTIONS[best]
    if is_larger_than_target(box, target, thresholds):
        current = iou(box, target)
        best_action, best_iou = TERMINAL_ACTION, current
        for action in ZOOM_ACTIONS:  # increasing index: a later zoom wins only with a strictly higher IoU
            after = apply_action(box, action, shape, zoom=config.zoom, shift=config.shift)
            overlap = iou(after, target)
            if overlap > best_iou and recall(after, target) > thresholds.tau_recall:
                best_action, best_iou = action, overlap
        if best_action != TERMINAL_ACTION:
            return best_action
    return TERMINAL_ACTION
