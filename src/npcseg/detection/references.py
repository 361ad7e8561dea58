"""Reference rows of the detection table, needing no training: what the scores mean on a given cohort.

* ``start_box`` -- no search at all: the start box (centred, ``start_fraction`` = 42 % of the slice's height and
  width) taken as the detection. On a cohort whose tumours sit near the image centre it already has a high recall
  with a low IoU; a learned agent must beat its IoU without losing its recall to be of use.
* ``prior_policy`` -- Algorithm 2's prior-knowledge action followed from the start box until it takes the terminal
  action or ``max_steps`` run out. It reads the slice's ground-truth box, so it is an upper reference (what the
  agent's teacher reaches), not a detector.

Both are deterministic functions of the slices and the :class:`~npcseg.detection.config.DetectorConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from npcseg.detection.boxes import TERMINAL_ACTION, Box, apply_action, initial_box
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import DetectionSlice, detection_slices
from npcseg.detection.reward import prior_action
from npcseg.detection.scores import DetectionSummary, write_slice_scores

START_BOX = "start_box"
PRIOR_POLICY = "prior_policy"
REFERENCES = (START_BOX, PRIOR_POLICY)
"""Names (rows and folders) of the reference policies, in table order."""


def start_boxes(slices: Sequence[DetectionSlice], config: DetectorConfig) -> list[Box]:
    """The start box of each slice (no search)."""
    return [initial_box(item.shape, config.start_fraction) for item in slices]


def follow_policy(
    shape: tuple[int, int], config: DetectorConfig, choose: Callable[[Box, int], int]
) -> tuple[Box, int, bool]:
    """One episode of a policy on a slice of ``shape`` from the start box: ``choose(box, step)`` gives each action
    until the terminal action or ``max_steps``. Returns the final box, the number of actions taken (the terminal
    action counted) and whether the policy took the terminal action."""
    box = initial_box(shape, config.start_fraction)
    for step in range(config.max_steps):
        action = choose(box, step)
        if action == TERMINAL_ACTION:
            return box, step + 1, True
        box = apply_action(box, action, shape, zoom=config.zoom, shift=config.shift)
    return box, config.max_steps, False


def prior_policy_box(item: DetectionSlice, config: DetectorConfig) -> tuple[Box, int]:
    """The box where Algorithm 2's policy stops on ``item`` (needs its target) and the number of actions taken
    (the terminal action counted)."""
    target = item.target
    if target is None:
        raise ValueError(f"slice {item.z} of case {item.case_id!r} has no target box: no prior-knowledge policy")
    box, steps, _ = follow_policy(item.shape, config, lambda box, _: prior_action(box, target, item.shape, config))
    return box, steps


def reference_boxes(name: str, slices: Sequence[DetectionSlice], config: DetectorConfig) -> list[Box]:
    """The boxes of the reference ``name`` (one of :data:`REFERENCES`) on ``slices``."""
    if name == START_BOX:
        return start_boxes(slices, config)
    if name == PRIOR_POLICY:
        return [prior_policy_box(item, config)[0] for item in slices]
    raise ValueError(f"unknown reference {name!r}; choose from {list(REFERENCES)}")


def score_reference(
    name: str, cache: Path, case_ids: Sequence[str], config: DetectorConfig, out: Path
) -> DetectionSummary:
    """Score the reference ``name`` on every tumour slice of ``case_ids`` and write the scores to ``out``
    (:func:`~npcseg.detection.scores.write_detection_scores`).

    Raises:
        ValueError: unknown name, no case ids, a case without label, or no tumour slice.
        FileNotFoundError: the cache or a case is missing.
    """
    if not case_ids:
        raise ValueError("no case ids to score the reference on")
    slices = detection_slices(cache, case_ids, config.sequences)
    if not slices:
        raise ValueError(f"{cache}: the cases {list(case_ids)} have no tumour slice to score")
    boxes = reference_boxes(name, slices, config)
    extra = {"reference": name, "uses_ground_truth": name == PRIOR_POLICY, "cache": str(cache)}
    return write_slice_scores(out, slices, boxes, extra=extra)
