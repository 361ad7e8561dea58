"""Boxes and the 11 actions: hand-computed geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npcseg.detection.boxes import (
    ACTIONS,
    NUM_ACTIONS,
    SHIFT_ACTIONS,
    TERMINAL_ACTION,
    ZOOM_ACTIONS,
    Box,
    apply_action,
    box_of_mask,
    centre_distance,
    initial_box,
    intersection,
    iou,
    recall,
)


def test_action_indices() -> None:
    assert NUM_ACTIONS == 11 and len(ACTIONS) == 11 and ACTIONS[TERMINAL_ACTION] == "terminal"
    assert ZOOM_ACTIONS == (0, 1, 2, 3, 4, 5) and SHIFT_ACTIONS == (6, 7, 8, 9)
    assert [ACTIONS[action] for action in SHIFT_ACTIONS] == ["shift_up", "shift_down", "shift_left", "shift_right"]


def test_box_properties() -> None:
    box = Box(2.0, 1.0, 5.0, 5.0)
    assert (box.height, box.width, box.area, box.centre, box.diagonal) == (3.0, 4.0, 12.0, (3.5, 3.0), 5.0)
    assert box.scaled(2.0) == Box(0.5, -1.0, 6.5, 7.0)
    assert box.scaled(2.0).clipped((6, 6)) == Box(0.5, 0.0, 6.0, 6.0)
    assert Box(1.5, 2.2, 3.0, 7.9).pixel_bounds((10, 10)) == (1, 2, 3, 8)
    assert Box(0.0, 0.0, 0.2, 0.2).pixel_bounds((4, 4)) == (0, 0, 1, 1)  # at least one pixel
    assert Box(-3.0, -3.0, 20.0, 20.0).pixel_bounds((4, 5)) == (0, 0, 4, 5)  # inside the image
    with pytest.raises(ValueError, match="bottom > top"):
        Box(1.0, 0.0, 1.0, 2.0)


def test_iou_recall_and_distance_by_hand() -> None:
    a, b = Box(0.0, 0.0, 2.0, 2.0), Box(1.0, 1.0, 3.0, 3.0)
    assert intersection(a, b) == 1.0
    assert iou(a, b) == pytest.approx(1 / 7)
    assert recall(a, b) == pytest.approx(1 / 4)
    assert centre_distance(a, b) == pytest.approx(math.sqrt(2))
    inner, outer = Box(1.0, 1.0, 2.0, 3.0), Box(0.0, 0.0, 4.0, 4.0)
    assert recall(outer, inner) == 1.0 and iou(outer, inner) == pytest.approx(2 / 16)
    assert recall(inner, outer) == pytest.approx(2 / 16)
    assert iou(a, Box(5.0, 5.0, 6.0, 6.0)) == 0.0 and iou(a, Box(2.0, 0.0, 3.0, 2.0)) == 0.0  # touching: 0


# box of height 8 and width 16: zooms to 6 x 12, shifts by 2 rows / 4 columns
EXPECTED = {
    0: Box(8, 4, 14, 16),
    1: Box(8, 8, 14, 20),
    2: Box(10, 4, 16, 16),
    3: Box(10, 8, 16, 20),
    4: Box(8, 6, 16, 18),
    5: Box(9, 4, 15, 20),
    6: Box(6, 4, 14, 20),
    7: Box(10, 4, 18, 20),
    8: Box(8, 0, 16, 16),
    9: Box(8, 8, 16, 24),
    10: Box(8, 4, 16, 20),
}


@pytest.mark.parametrize("action", range(NUM_ACTIONS))
def test_apply_action_by_hand(action: int) -> None:
    moved = apply_action(Box(8.0, 4.0, 16.0, 20.0), action, (32, 32))
    assert moved.as_tuple() == pytest.approx(EXPECTED[action].as_tuple())


def test_shifts_stop_at_the_border() -> None:
    box, shape = Box(1.0, 2.0, 9.0, 18.0), (10, 20)  # 1 row above, 1 below, 2 columns each side
    assert apply_action(box, 6, shape) == Box(0.0, 2.0, 8.0, 18.0)
    assert apply_action(box, 7, shape) == Box(2.0, 2.0, 10.0, 18.0)
    assert apply_action(box, 8, shape) == Box(1.0, 0.0, 9.0, 16.0)
    assert apply_action(box, 9, shape) == Box(1.0, 4.0, 9.0, 20.0)
    at_corner = Box(0.0, 0.0, 4.0, 4.0)
    assert apply_action(at_corner, 6, shape) == at_corner and apply_action(at_corner, 8, shape) == at_corner


def test_apply_action_options_and_errors() -> None:
    box = Box(0.0, 0.0, 8.0, 8.0)
    assert apply_action(box, 0, (10, 10), zoom=0.5) == Box(0.0, 0.0, 4.0, 4.0)
    assert apply_action(box, 7, (10, 10), shift=0.125) == Box(1.0, 0.0, 9.0, 8.0)
    with pytest.raises(ValueError, match=r"action must be in 0\.\.10"):
        apply_action(box, 11, (10, 10))


def test_box_of_mask_covers_every_component() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:3, 2:4] = True
    mask[6:8, 5:9] = True
    assert box_of_mask(mask) == Box(1.0, 2.0, 8.0, 9.0)
    single = np.zeros((5, 5), dtype=np.uint8)
    single[4, 0] = 1
    assert box_of_mask(single) == Box(4.0, 0.0, 5.0, 1.0)
    assert box_of_mask(np.zeros((5, 5))) is None
    with pytest.raises(ValueError, match="2D mask"):
        box_of_mask(np.zeros((2, 5, 5)))


def test_initial_box_is_centred_at_42_percent() -> None:
    box = initial_box((100, 200))
    assert box.as_tuple() == pytest.approx((29.0, 58.0, 71.0, 142.0))
    assert (box.height, box.width) == pytest.approx((42.0, 84.0))
    assert initial_box((10, 10), 1.0) == Box(0.0, 0.0, 10.0, 10.0)
    with pytest.raises(ValueError, match="fraction"):
        initial_box((10, 10), 0.0)
