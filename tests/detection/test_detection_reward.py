"""Algorithm 1 (reward) and Algorithm 2 (prior-knowledge action) on hand-built boxes, one test per branch."""

from __future__ import annotations

import pytest

from npcseg.detection.boxes import TERMINAL_ACTION, ZOOM_ACTIONS, Box, apply_action, centre_distance, iou, recall
from npcseg.detection.config import DetectorConfig, RewardConfig
from npcseg.detection.reward import is_larger_than_target, prior_action, reward

SHAPE = (100, 100)
CONFIG = RewardConfig()
TARGET = Box(40.0, 40.0, 50.0, 50.0)  # 10 x 10, centre (45, 45)


def moved_reward(box: Box, action: int, target: Box = TARGET, config: RewardConfig = CONFIG) -> float:
    return reward(box, apply_action(box, action, SHAPE), action, target, config)


def test_shift_closer_is_rewarded() -> None:
    assert moved_reward(Box(40.0, 0.0, 50.0, 10.0), 9) == 1.0  # right, toward the target
    assert moved_reward(Box(0.0, 40.0, 10.0, 50.0), 7) == 1.0  # down


def test_shift_farther_is_punished() -> None:
    assert moved_reward(Box(40.0, 10.0, 50.0, 20.0), 8) == -1.0  # left, away
    assert moved_reward(Box(0.0, 40.0, 10.0, 50.0), 6) == 0.0  # up at the top border: no move, no change


def test_shift_that_does_not_move_gives_zero() -> None:
    box = Box(40.0, 0.0, 50.0, 10.0)
    assert apply_action(box, 8, SHAPE) == box
    assert moved_reward(box, 8) == 0.0


def test_zoom_far_from_the_target_with_a_large_box_is_judged_by_distance() -> None:
    far = Box(80.0, 80.0, 90.0, 90.0)
    box = Box(0.0, 0.0, 40.0, 40.0)
    toward, away = apply_action(box, 3, SHAPE), apply_action(box, 0, SHAPE)  # keep bottom-right / top-left corner
    assert iou(box, far) == iou(toward, far) == iou(away, far) == 0.0  # IoU alone would give 0
    assert toward.height > CONFIG.tau_h * far.height and toward.width > CONFIG.tau_w * far.width
    assert centre_distance(toward, far) < centre_distance(box, far) < centre_distance(away, far)
    assert moved_reward(box, 3, far) == 1.0
    assert moved_reward(box, 0, far) == -1.0


def test_zoom_to_a_box_no_longer_large_is_judged_by_iou() -> None:
    far = Box(80.0, 80.0, 90.0, 90.0)
    box = Box(0.0, 0.0, 12.0, 12.0)
    after = apply_action(box, 3, SHAPE)  # 9 x 9: not taller than 0.9 * 10
    assert after.height == pytest.approx(9.0) and centre_distance(after, far) < centre_distance(box, far)
    assert moved_reward(box, 3, far) == 0.0  # both IoUs 0: sign(0), although the centre came closer
    taller = RewardConfig(tau_h=0.8, tau_w=0.8)  # 9 > 8: large again -> distance
    assert moved_reward(box, 3, far, taller) == 1.0


def test_zoom_otherwise_is_judged_by_iou() -> None:
    assert moved_reward(Box(30.0, 30.0, 60.0, 60.0), 4) == 1.0  # narrower around the target: IoU up
    tight = Box(40.0, 40.0, 52.0, 52.0)
    assert iou(apply_action(tight, 3, SHAPE), TARGET) < iou(tight, TARGET)
    assert moved_reward(tight, 3) == -1.0  # cuts into the target: IoU down
    # the box touches the target before and not after, the centre does not move: IoU decides (-1), not distance (0)
    grazing = Box(38.0, 0.0, 50.0, 41.0)
    assert iou(grazing, TARGET) > 0 and iou(apply_action(grazing, 4, SHAPE), TARGET) == 0
    assert moved_reward(grazing, 4) == -1.0


def test_terminal_success_needs_recall_and_iou() -> None:
    good = Box(39.0, 39.0, 51.0, 51.0)
    assert recall(good, TARGET) == 1.0 and iou(good, TARGET) == pytest.approx(100 / 144)
    assert reward(good, good, TERMINAL_ACTION, TARGET, CONFIG) == 3.0
    assert reward(good, good, TERMINAL_ACTION, TARGET, RewardConfig(terminal_reward=5.0)) == 5.0


def test_terminal_failure_by_recall() -> None:
    short = Box(40.0, 40.0, 50.0, 49.4)  # IoU 0.94 but recall 0.94
    assert iou(short, TARGET) > CONFIG.tau_iou and recall(short, TARGET) < CONFIG.tau_recall
    assert reward(short, short, TERMINAL_ACTION, TARGET, CONFIG) == -3.0
    exact = Box(40.0, 40.0, 50.0, 49.5)  # recall exactly 0.95: not above it
    assert recall(exact, TARGET) == 0.95
    assert reward(exact, exact, TERMINAL_ACTION, TARGET, CONFIG) == -3.0


def test_terminal_failure_by_iou() -> None:
    loose = Box(35.0, 35.0, 55.0, 55.0)  # recall 1, IoU 0.25
    assert recall(loose, TARGET) == 1.0 and iou(loose, TARGET) == 0.25
    assert reward(loose, loose, TERMINAL_ACTION, TARGET, CONFIG) == -3.0
    assert reward(loose, loose, TERMINAL_ACTION, TARGET, RewardConfig(tau_iou=0.2)) == 3.0


def test_prior_action_shifts_toward_a_far_target() -> None:
    config = DetectorConfig()
    assert prior_action(Box(40.0, 0.0, 50.0, 10.0), TARGET, SHAPE, config) == 9  # right
    assert prior_action(Box(40.0, 80.0, 50.0, 90.0), TARGET, SHAPE, config) == 8  # left
    assert prior_action(Box(80.0, 40.0, 90.0, 50.0), TARGET, SHAPE, config) == 6  # up
    assert prior_action(Box(0.0, 0.0, 10.0, 10.0), TARGET, SHAPE, config) == 7  # down and right tie: down (7 < 9)


def test_prior_action_zooms_a_centred_large_box() -> None:
    config = DetectorConfig()
    wide = Box(40.0, 30.0, 50.0, 60.0)  # centred, right height, three times too wide
    assert is_larger_than_target(wide, TARGET, config.reward)
    assert prior_action(wide, TARGET, SHAPE, config) == 4  # narrower: IoU 0.333 -> 0.444, the best zoom
    square = Box(30.0, 30.0, 60.0, 60.0)  # the four corner zooms tie: the first
    assert prior_action(square, TARGET, SHAPE, config) == 0


def test_prior_action_does_not_zoom_away_target_it_holds() -> None:
    config = DetectorConfig()
    box = Box(38.0, 34.0, 52.0, 56.0)  # centred, 14 x 22
    corner, narrower = apply_action(box, 0, SHAPE), apply_action(box, 4, SHAPE)
    assert iou(corner, TARGET) > iou(narrower, TARGET) > iou(box, TARGET)  # the best IoU cuts rows 48.5-50 off
    assert recall(corner, TARGET) == pytest.approx(0.85) and recall(narrower, TARGET) == 1.0
    assert prior_action(box, TARGET, SHAPE, config) == 4


def test_prior_action_zooms_when_no_shift_helps() -> None:
    config = DetectorConfig()
    big = Box(5.0, 7.0, 85.0, 87.0)  # centre 2 px off (> 10 * sqrt(2) / 8) but every 20 px shift overshoots
    assert centre_distance(big, TARGET) > config.reward.tau_distance * TARGET.diagonal
    assert prior_action(big, TARGET, SHAPE, config) in ZOOM_ACTIONS


def test_prior_action_terminates_on_a_fitting_box() -> None:
    config = DetectorConfig()
    fitting = Box(39.5, 39.5, 50.5, 50.5)  # 11 * 0.9 < 10: not larger by the margins
    assert not is_larger_than_target(fitting, TARGET, config.reward)
    assert prior_action(fitting, TARGET, SHAPE, config) == TERMINAL_ACTION
    slightly_wide = Box(40.0, 40.0, 50.0, 51.5)  # larger by the margin, but every zoom lowers the IoU
    assert is_larger_than_target(slightly_wide, TARGET, config.reward)
    assert prior_action(slightly_wide, TARGET, SHAPE, config) == TERMINAL_ACTION


def test_prior_policy_reaches_a_successful_terminal() -> None:
    """Following Algorithm 2 from the start box ends with a positive terminal reward on easy targets."""
    config = DetectorConfig()
    for target in (TARGET, Box(12.0, 60.0, 28.0, 76.0), Box(70.0, 20.0, 82.0, 28.0)):
        box = Box(29.0, 29.0, 71.0, 71.0)
        for _ in range(config.max_steps):
            action = prior_action(box, target, SHAPE, config)
            after = apply_action(box, action, SHAPE, zoom=config.zoom, shift=config.shift)
            if action == TERMINAL_ACTION:
                break
            assert reward(box, after, action, target, config.reward) == 1.0  # the prior only takes rewarded moves
            box = after
        assert reward(box, box, TERMINAL_ACTION, target, config.reward) == 3.0, (target, box)


def test_reward_rejects_unknown_actions() -> None:
    with pytest.raises(ValueError, match="action"):
        reward(TARGET, TARGET, 11, TARGET, CONFIG)
