"""The gymnasium box-search environment and the detection slices of a cache."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gymnasium.spaces import Discrete
from gymnasium.utils.env_checker import check_env

from npcseg.config import save_config
from npcseg.detection.boxes import NUM_ACTIONS, TERMINAL_ACTION, Box, apply_action, initial_box, iou, recall
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import BoxEnv, DetectionSlice, detection_slices, history_one_hot
from npcseg.detection.features import build_backbone
from npcseg.detection.reward import prior_action, reward, terminal_reward
from npcseg.preprocessing.cache import case_files
from npcseg.preprocessing.config import PreprocessingConfig

CONFIG = DetectorConfig(backbone_width=4, input_size=32, history_length=2, max_steps=4)


def fake_slice(target: Box | None, seed: int = 0, size: int = 48) -> DetectionSlice:
    image = np.random.default_rng(seed).normal(0.0, 0.1, size=(2, size, size)).astype(np.float32)
    if target is not None:
        top, left, bottom, right = target.pixel_bounds((size, size))
        image[:, top:bottom, left:right] += 1.0
    return DetectionSlice(image, target, f"case{seed}", seed)


@pytest.fixture(scope="module")
def env() -> BoxEnv:
    slices = [fake_slice(Box(20.0, 24.0, 28.0, 34.0)), fake_slice(Box(5.0, 5.0, 15.0, 12.0), seed=1)]
    return BoxEnv(slices, build_backbone(CONFIG, 2), CONFIG)


def test_passes_the_gymnasium_checker(env: BoxEnv) -> None:
    check_env(env, skip_render_check=True)


def test_spaces_and_observation_layout(env: BoxEnv) -> None:
    features = env.backbone.feature_size
    assert env.state_size == 2 * features + 2 * NUM_ACTIONS
    assert env.observation_space.shape == (env.state_size,)
    assert isinstance(env.action_space, Discrete) and env.action_space.n == NUM_ACTIONS
    state, info = env.reset(options={"index": 1})
    assert state.dtype == np.float32 and state.shape == (env.state_size,)
    assert info["box"] == initial_box((48, 48), 0.42) == env.box and info["action_name"] is None
    cached = env.slice_features(1)
    np.testing.assert_array_equal(state[:features], cached.global_features)
    np.testing.assert_array_equal(state[features : 2 * features], cached.crop_features(env.box))
    assert not state[2 * features :].any()  # no action taken yet
    for action in (6, 3):
        state, *_ = env.step(action)
    history = state[2 * features :].reshape(2, NUM_ACTIONS)
    assert history[0].argmax() == 3 and history[1].argmax() == 6 and history.sum() == 2  # most recent first
    np.testing.assert_array_equal(state[features : 2 * features], cached.crop_features(env.box))


def test_box_coordinates_in_the_state() -> None:
    config = DetectorConfig(backbone_width=4, input_size=32, history_length=2, max_steps=4, box_in_state=True)
    boxed = BoxEnv([fake_slice(Box(20.0, 24.0, 28.0, 34.0))], build_backbone(config, 2), config)
    assert boxed.state_size == 2 * boxed.backbone.feature_size + 2 * NUM_ACTIONS + 4
    state, _ = boxed.reset(options={"index": 0})
    np.testing.assert_allclose(state[-4:], [0.29, 0.29, 0.71, 0.71], atol=1e-6)  # 42 % start box of a 48 x 48 slice
    state, *_ = boxed.step(0)  # keep the top-left corner, 3/4 of the size: bottom/right at 0.29 + 0.75 * 0.42
    np.testing.assert_allclose(state[-4:], [0.29, 0.29, 0.605, 0.605], atol=1e-6)
    check_env(boxed, skip_render_check=True)


def test_history_one_hot() -> None:
    encoded = history_one_hot([4, 10, 0], 2).reshape(2, NUM_ACTIONS)
    assert encoded[0, 4] == 1 and encoded[1, 10] == 1 and encoded.sum() == 2
    assert not history_one_hot([], 3).any() and history_one_hot([1], 0).shape == (0,)


def test_steps_follow_the_actions_and_algorithm_1(env: BoxEnv) -> None:
    _, info = env.reset(options={"index": 0})
    target = env.slice.target
    assert target is not None and info["target"] == target
    box = env.box
    for number, action in enumerate((9, 7, 0), start=1):
        expected = apply_action(box, action, (48, 48), zoom=CONFIG.zoom, shift=CONFIG.shift)
        _, value, terminated, truncated, info = env.step(action)
        assert value == reward(box, expected, action, target, CONFIG.reward)
        assert env.box == info["box"] == expected and not terminated and not truncated
        assert info["step"] == number and info["iou"] == iou(expected, target)
        assert info["recall"] == recall(expected, target)
        box = expected
    assert info["action_name"] == "zoom_top_left"
    assert env.prior_action() == prior_action(box, target, (48, 48), CONFIG)


def test_terminal_action_ends_and_max_steps_truncate(env: BoxEnv) -> None:
    env.reset(options={"index": 0})
    _, value, terminated, truncated, _ = env.step(TERMINAL_ACTION)
    assert terminated and not truncated and abs(value) == CONFIG.reward.terminal_reward
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(options={"index": 0})
    outcomes = [env.step(6)[2:4] for _ in range(CONFIG.max_steps)]
    assert outcomes == [(False, False)] * (CONFIG.max_steps - 1) + [(False, True)]
    env.reset(options={"index": 0})
    for _ in range(CONFIG.max_steps - 1):
        env.step(6)
    assert env.step(TERMINAL_ACTION)[2:4] == (True, False)  # a terminal action on the last step is terminal


def test_judge_step_limit_judges_the_last_box_of_a_cut_episode(env: BoxEnv) -> None:
    config = replace(CONFIG, reward=replace(CONFIG.reward, judge_step_limit=True))
    judged = BoxEnv(env.slices, env.backbone, config)
    for candidate in (judged, env):
        candidate.reset(options={"index": 0})
        values = []
        for _ in range(CONFIG.max_steps):
            before = candidate.box
            _, value, terminated, truncated, info = candidate.step(6)
            values.append((value, reward(before, info["box"], 6, info["target"], CONFIG.reward)))
        assert (terminated, truncated) == (False, True)  # still a cut, for gymnasium and the episode record
        assert all(value == move for value, move in values[:-1])
        last, move = values[-1]
        extra = terminal_reward(info["box"], info["target"], CONFIG.reward) if candidate is judged else 0.0
        assert last == move + extra and (candidate is env or abs(extra) == CONFIG.reward.terminal_reward)


def test_reset_draws_slices_from_its_seed(env: BoxEnv) -> None:
    drawn = [env.reset(seed=5)[1]["index"]] + [env.reset()[1]["index"] for _ in range(9)]
    again = [env.reset(seed=5)[1]["index"]] + [env.reset()[1]["index"] for _ in range(9)]
    assert drawn == again and set(drawn) == {0, 1}
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"index": 2})


def test_features_are_cached_across_episodes() -> None:
    slices = [fake_slice(Box(20.0, 24.0, 28.0, 34.0))]
    env = BoxEnv(slices, build_backbone(CONFIG, 2), CONFIG)
    for _ in range(3):
        env.reset(options={"index": 0})
        env.step(0)
        env.step(9)
    hits, misses = env.cache_counts
    assert (hits, misses) == (6, 3)  # 3 windows, each computed once
    assert len(env.features) == 1


def test_slices_without_target() -> None:
    slices = [fake_slice(None)]
    env = BoxEnv(slices, build_backbone(CONFIG, 2), CONFIG)
    env.reset()
    with pytest.raises(ValueError, match="no target box"):
        env.step(0)
    with pytest.raises(ValueError, match="no target box"):
        env.prior_action()
    evaluation = BoxEnv(slices, env.backbone, CONFIG, allow_unlabelled=True)
    evaluation.reset()
    _, value, _, _, info = evaluation.step(0)
    assert value == 0.0 and np.isnan(info["iou"]) and np.isnan(info["recall"]) and info["target"] is None


def test_environment_checks_its_slices() -> None:
    backbone = build_backbone(CONFIG, 2)
    with pytest.raises(ValueError, match="at least one slice"):
        BoxEnv([], backbone, CONFIG)
    three_channels = DetectionSlice(np.zeros((3, 32, 32), dtype=np.float32), None, "x", 0)
    with pytest.raises(ValueError, match="2 channel"):
        BoxEnv([three_channels], backbone, CONFIG)


def write_case(cache: Path, case_id: str, label: np.ndarray | None) -> None:
    num_slices = 3 if label is None else label.shape[0]
    image = np.arange(3, dtype=np.float32)[:, None, None, None] * 10 + np.zeros((3, num_slices, 16, 16))
    image += np.arange(num_slices, dtype=np.float32)[None, :, None, None]
    arrays_path, record_path = case_files(cache, case_id)
    arrays_path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"image": image.astype(np.float32), **({} if label is None else {"label": label})}
    np.savez_compressed(arrays_path, **arrays)  # type: ignore[arg-type]
    record_path.write_text(json.dumps({"case_id": case_id}))


def test_detection_slices_of_a_cache(tmp_path: Path) -> None:
    save_config(PreprocessingConfig(sequences=("t1", "t1c", "t2"), slice_size=16), tmp_path / "preprocessing.yaml")
    label = np.zeros((3, 16, 16), dtype=np.uint8)
    label[1, 2:4, 3:5] = 1
    label[1, 10:12, 8:15] = 1  # a second component on the same slice
    label[2, 5, 6] = 1
    write_case(tmp_path, "a", label)
    write_case(tmp_path, "b", None)

    slices = detection_slices(tmp_path, ["a"], ("t2", "t1"))
    assert [(item.case_id, item.z) for item in slices] == [("a", 1), ("a", 2)]
    assert slices[0].target == Box(2.0, 3.0, 12.0, 15.0)  # one box around both components
    assert slices[1].target == Box(5.0, 6.0, 6.0, 7.0)
    assert slices[0].image.dtype == np.float32 and slices[0].image.shape == (2, 16, 16)
    assert slices[0].image[0, 0, 0] == 21 and slices[0].image[1, 0, 0] == 1  # t2 (channel 2), then t1, of z 1

    every = detection_slices(tmp_path, ["a", "b"], ("t1",), tumour_only=False)
    assert [(item.case_id, item.z, item.target is None) for item in every] == [
        ("a", 0, True),
        ("a", 1, False),
        ("a", 2, False),
        ("b", 0, True),
        ("b", 1, True),
        ("b", 2, True),
    ]
    with pytest.raises(ValueError, match="'b' has no label"):
        detection_slices(tmp_path, ["b"], ("t1",))
    with pytest.raises(ValueError, match="flair"):
        detection_slices(tmp_path, ["a"], ("flair",))
