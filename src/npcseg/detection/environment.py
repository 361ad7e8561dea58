"""The detection environment: an agent moves a box over one slice (SeqSeg; METHODS.md, method 2, Algorithm 1).

:class:`BoxEnv` is a ``gymnasium.Env``. An episode is one slice: the box starts centred at ``start_fraction``
(42 %) of the slice's height and width; each step applies one of the 11 actions of
:mod:`npcseg.detection.boxes`; the episode ends at the terminal action (``terminated``) or after ``max_steps`` (15)
steps (``truncated``). The reward is Algorithm 1 (:func:`npcseg.detection.reward.reward`); with
``reward.judge_step_limit`` the last step of a cut episode also gets the terminal judgement of its box.

Observation (float32, ``2 F + h * 11`` values): global features of the whole slice, features of the current box's
crop (the frozen backbone of :mod:`npcseg.detection.features`), and the one-hot of the last ``h`` actions, most
recent first, zeros where fewer than ``h`` actions were taken (the paper: "history of the last h actions").

Targets: the ground-truth box of a slice is the box around all of its label's components together (our policy for
several components; the paper does not say). Features are cached per slice across episodes and epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from npcseg.detection.boxes import (
    ACTIONS,
    NUM_ACTIONS,
    TERMINAL_ACTION,
    Box,
    apply_action,
    box_of_mask,
    initial_box,
    iou,
    recall,
)
from npcseg.detection.config import DetectorConfig
from npcseg.detection.features import Backbone, SliceFeatures
from npcseg.detection.reward import prior_action, reward, terminal_reward

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DetectionSlice:
    """One slice for the detector (compared by identity: it holds an array).

    Attributes:
        image: float32 ``(C, H, W)``, channels in the detector's ``sequences`` order.
        target: the box around every tumour pixel of the slice's label, ``None`` without tumour (or label).
        case_id: the case it comes from.
        z: its slice index in the case.
    """

    image: np.ndarray
    target: Box | None
    case_id: str
    z: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the slice."""
        return int(self.image.shape[1]), int(self.image.shape[2])


def detection_slices(
    cache: Path, case_ids: Sequence[str], sequences: Sequence[str], *, tumour_only: bool = True
) -> list[DetectionSlice]:
    """The slices of some cached cases (``npcseg preprocess`` output), in case then slice order.

    Args:
        cache: the preprocessed cache folder.
        case_ids: the cases.
        sequences: channel order wanted (names from the cache's ``sequences``).
        tumour_only: keep only slices whose label holds tumour (training); ``False`` keeps every slice (cases
            without a label are then allowed, with ``target=None`` everywhere).

    Raises:
        FileNotFoundError: the cache or a case is missing.
        ValueError: a sequence is not in the cache, or ``tumour_only`` and a case has no label.
    """
    from npcseg.data.dataset import channel_indices
    from npcseg.preprocessing import load_preprocessed
    from npcseg.preprocessing.cache import load_cache_config

    cache = Path(cache)
    indices = channel_indices(load_cache_config(cache).sequences, sequences, cache)
    slices: list[DetectionSlice] = []
    for case_id in case_ids:
        case = load_preprocessed(cache, case_id)
        if case.label is None and tumour_only:
            raise ValueError(f"{cache}: case {case_id!r} has no label; its tumour slices are unknown")
        image = np.asarray(case.image[indices], dtype=np.float32)
        for z in range(image.shape[1]):
            target = None if case.label is None else box_of_mask(case.label[z] != 0)
            if target is None and tumour_only:
                continue
            slices.append(DetectionSlice(np.ascontiguousarray(image[:, z]), target, case_id, z))
    logger.debug("%s: %d detection slice(s) from %d case(s)", cache, len(slices), len(case_ids))
    return slices


def state_size(feature_size: int, config: DetectorConfig) -> int:
    """Length of an observation: ``2 * F + history_length * 11`` (+ 4 box coordinates with ``box_in_state``)."""
    return 2 * feature_size + config.history_length * NUM_ACTIONS + (4 if config.box_in_state else 0)


def history_one_hot(history: Sequence[int], length: int) -> np.ndarray:
    """``(length * 11,)`` float32: block ``k`` is the one-hot of ``history[k]`` (most recent first), zeros past
    the end of ``history``."""
    encoded = np.zeros((length, NUM_ACTIONS), dtype=np.float32)
    for position, action in enumerate(history[:length]):
        encoded[position, action] = 1.0
    return encoded.reshape(-1)


class BoxEnv(gymnasium.Env[np.ndarray, np.int64]):
    """Box search on one slice per episode (see the module docstring).

    Args:
        slices: the slices episodes are drawn from (all with the backbone's number of channels).
        backbone: the frozen feature backbone.
        config: detector settings (``start_fraction``, ``max_steps``, ``zoom``, ``shift``, ``history_length``,
            ``input_size``, ``reward``).
        allow_unlabelled: step on a slice without target with reward 0 and ``nan`` IoU / recall (for running a
            trained agent on every slice); by default such a step raises, as training uses tumour slices only.

    ``reset(options={"index": i})`` starts on ``slices[i]``, otherwise on a slice drawn from ``np_random``.
    ``info`` of reset and step: ``box``, ``target``, ``iou``, ``recall`` (of the current box), ``step`` (steps
    taken), ``action_name`` (of the last action, ``None`` after reset) and ``index`` (of the slice).
    """

    def __init__(
        self,
        slices: Sequence[DetectionSlice],
        backbone: Backbone,
        config: DetectorConfig,
        *,
        allow_unlabelled: bool = False,
    ) -> None:
        super().__init__()
        if not slices:
            raise ValueError("the detection environment needs at least one slice")
        channels = backbone.in_channels
        wrong = [(item.case_id, item.z) for item in slices if item.image.ndim != 3 or len(item.image) != channels]
        if wrong:
            raise ValueError(
                f"slice(s) {wrong[:5]} are not (C, H, W) images with the backbone's {backbone.in_channels} channel(s)"
            )
        self.slices = list(slices)
        self.backbone = backbone
        self.config = config
        self.allow_unlabelled = allow_unlabelled
        self.features: dict[int, SliceFeatures] = {}
        self.action_space = gymnasium.spaces.Discrete(NUM_ACTIONS)
        # features are averages of ReLU outputs and the history is one-hot: every value is >= 0
        largest = float(np.finfo(np.float32).max)
        self.observation_space = gymnasium.spaces.Box(0.0, largest, (self.state_size,), np.float32)
        self.index = 0
        self._box: Box | None = None
        self.history: list[int] = []
        self.num_steps = 0
        self.is_done = True

    @property
    def state_size(self) -> int:
        """Length of an observation (:func:`state_size`)."""
        return state_size(self.backbone.feature_size, self.config)

    @property
    def box(self) -> Box:
        """The current box."""
        if self._box is None:
            raise RuntimeError("call reset() before using the environment")
        return self._box

    @property
    def slice(self) -> DetectionSlice:
        """The slice of the current episode."""
        return self.slices[self.index]

    @property
    def shape(self) -> tuple[int, int]:
        return self.slice.shape

    def slice_features(self, index: int) -> SliceFeatures:
        """The (cached) features of ``slices[index]``, created on first use and kept for the env's lifetime."""
        if index not in self.features:
            self.features[index] = SliceFeatures(self.slices[index].image, self.backbone, self.config.input_size)
        return self.features[index]

    @property
    def cache_counts(self) -> tuple[int, int]:
        """(hits, misses) of the crop-feature caches of every slice so far."""
        return (
            sum(item.num_hits for item in self.features.values()),
            sum(item.num_misses for item in self.features.values()),
        )

    def observation(self) -> np.ndarray:
        """The state of the current box: global features, crop features, action history (float32)."""
        features = self.slice_features(self.index)
        parts = [
            features.global_features,
            features.crop_features(self.box),
            history_one_hot(self.history, self.config.history_length),
        ]
        if self.config.box_in_state:
            height, width = self.shape
            box = self.box
            parts.append(np.array([box.top / height, box.left / width, box.bottom / height, box.right / width]))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _info(self, action: int | None) -> dict[str, Any]:
        target = self.slice.target
        return {
            "box": self.box,
            "target": target,
            "iou": float("nan") if target is None else iou(self.box, target),
            "recall": float("nan") if target is None else recall(self.box, target),
            "step": self.num_steps,
            "action_name": None if action is None else ACTIONS[action],
            "index": self.index,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and "index" in options:
            index = int(options["index"])
            if not 0 <= index < len(self.slices):
                raise ValueError(f"slice index {index} out of range 0..{len(self.slices) - 1}")
        else:
            index = int(self.np_random.integers(len(self.slices)))
        self.index = index
        self._box = initial_box(self.shape, self.config.start_fraction)
        self.history = []
        self.num_steps = 0
        self.is_done = False
        return self.observation(), self._info(None)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.is_done:
            raise RuntimeError("the episode has ended; call reset()")
        action = int(action)
        if not 0 <= action < NUM_ACTIONS:
            raise ValueError(f"action must be in 0..{NUM_ACTIONS - 1}, got {action}")
        target = self.slice.target
        if target is None and not self.allow_unlabelled:
            raise ValueError(
                f"slice {self.index} (case {self.slice.case_id!r}, z {self.slice.z}) has no target box; the "
                "detector trains on tumour slices only"
            )
        before = self.box
        after = apply_action(before, action, self.shape, zoom=self.config.zoom, shift=self.config.shift)
        value = 0.0 if target is None else reward(before, after, action, target, self.config.reward)
        self._box = after
        self.history.insert(0, action)
        del self.history[self.config.history_length :]
        self.num_steps += 1
        terminated = action == TERMINAL_ACTION
        truncated = not terminated and self.num_steps >= self.config.max_steps
        if truncated and self.config.reward.judge_step_limit and target is not None:
            value += terminal_reward(after, target, self.config.reward)
        self.is_done = terminated or truncated
        return self.observation(), value, terminated, truncated, self._info(action)

    def prior_action(self) -> int:
        """Algorithm 2's action for the current box (needs the slice's target)."""
        target = self.slice.target
        if target is None:
            raise ValueError(f"slice {self.index} has no target box: no prior-knowledge action")
        return prior_action(self.box, target, self.shape, self.config)
